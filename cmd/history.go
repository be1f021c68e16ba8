package cmd

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *app) newHistoryCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "history [ID]",
		Short: "List a session's kept generations and whether each is intact",
		Long: `List the generations a session keeps, newest first: generation, save time,
payload size, title, flags, and whether it passes its integrity check. Each
payload is read in full.

History keeps payloads: the current generation, the newest generation
before it, and, for each of the K-1 payloads saved before the current one,
the newest generation that named it. A generation that changed metadata only
('ckpt step', 'ckpt mark') shares its payload with the one before, so it
never pushes a payload out. 'ckpt save --keep K'
(default 3, or $CKPT_KEEP) sets K; 'ckpt load --generation N' loads one.`,
		Example: `  ckpt history "$S"
  ckpt history "$S" --json | jq '.[] | select(.intact) | .generation'`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			return a.runHistory(c.Context(), historyOptions{id: id})
		},
	}
}

type historyOptions struct {
	id string
}

// runHistory lists the generations a session keeps.
func (a *app) runHistory(ctx context.Context, o historyOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	gens, err := s.History(ctx)
	if err != nil {
		return err
	}
	return a.printHistory(gens)
}
