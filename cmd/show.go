package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newShowCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "show [ID]",
		Short: "Show a session's metadata and lock state",
		Long: `Show all of a session's metadata: generation, save and creation times, title,
flags, app id, payload size and the process that saved it; and its lock: none,
or the owner of session.next and whether that writer is live or provably gone.
It reads the header only, not the payload.

Control characters, bidirectional overrides and bytes that are not UTF-8 in
the title and other stored text are shown escaped (\x1b, \n, \u202e), so
that they can neither drive the terminal nor start a line of their own;
--json has the text exactly.`,
		Example: `  ckpt show "$S"
  ckpt show "$S" --json | jq .generation`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			return a.runShow(c.Context(), showOptions{id: id})
		},
	}
}

type showOptions struct {
	id string
}

// runShow prints a session's metadata, steps and lock.
func (a *app) runShow(ctx context.Context, o showOptions) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	s, err := r.Open(ctx, o.id)
	if err != nil {
		return err
	}
	st, err := s.Stat(ctx, storage.WithSteps())
	if err != nil {
		return err
	}
	return a.printShow(st, sessionLocation(r.Root(), st.ID))
}
