package cmd

import (
	"context"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

func (a *app) newListCommand() *cobra.Command {
	var f repository.Filter
	c := &cobra.Command{
		Use:     "list [--prefix P] [--flag F]... [--no-flag F]... [--key K]",
		Aliases: []string{"ls"},
		Short:   "List sessions, youngest first",
		Long: `List the sessions in the repository, youngest first (by last save, else by
creation): id, generation, payload size, age of the last save, title, flags
and lock state ("live" or "stale").

--flag and --no-flag select the sessions that have, or have not, a flag;
'ckpt mark --set' and '--clear' change them.

Titles and other stored text are printed with control characters escaped
(\x1b, \n), and columns are aligned by display width; --json has them exact.

A damaged session is listed as DAMAGED with the reason; the others still list.
An empty repository lists nothing and exits 0.`,
		Example: `  ckpt list
  ckpt list --prefix nightly --flag incomplete --no-flag submitted
  ckpt list --json | jq -r '.[0].id'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := validFlags(slices.Concat(f.Flags, f.NoFlags)); err != nil {
				return err
			}
			if err := validKey(f.Key); err != nil {
				return err
			}
			return a.runList(c.Context(), f)
		},
	}
	c.Flags().StringVar(&f.Prefix, "prefix", "", "only sessions created with this prefix")
	c.Flags().StringArrayVar(&f.Flags, "flag", nil, "only sessions with this flag set (repeatable)")
	c.Flags().StringArrayVar(&f.NoFlags, "no-flag", nil, "only sessions without this flag (repeatable)")
	c.Flags().StringVar(&f.Key, "key", "", "only sessions created with exactly this `KEY`")
	return c
}

// runList lists the sessions f selects.
func (a *app) runList(ctx context.Context, f repository.Filter) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	f.WithSteps = a.json
	entries, err := r.List(ctx, f)
	if err != nil {
		return err
	}
	return a.printList(entries)
}
