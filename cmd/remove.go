package cmd

import (
	"context"

	"github.com/spf13/cobra"
)

func (a *app) newRemoveCommand() *cobra.Command {
	var o removeOptions
	c := &cobra.Command{
		Use:     "remove ID...",
		Aliases: []string{"rm"},
		Short:   "Remove sessions",
		Long: `Remove each session named, with all its checkpoints. A session whose writer
is live (it holds session.next's lock) is refused with exit status 4 unless
--force, or waited for with --wait; a session whose lock is stale is removed.

Each id is tried even if an earlier one fails; the exit status is that of the
failures, and each is reported on stderr.`,
		Example: `  ckpt remove "$S"
  ckpt list --json | jq -r '.[].id' | xargs ckpt remove`,
		Args: usageArgs(cobra.MinimumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			o.ids = args
			if err := o.lock.resolve(a); err != nil {
				return err
			}
			return a.runRemove(c.Context(), o)
		},
	}
	c.Flags().BoolVar(&o.force, "force", false, "remove even a session with a live writer")
	o.lock.register(c)
	return c
}

type removeOptions struct {
	ids   []string
	force bool
	lock  lockFlags
}

// runRemove removes each session named, going on past failures, and
// reports them all at the end.
func (a *app) runRemove(ctx context.Context, o removeOptions) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	removed := []string{}
	var errs []error
	for _, id := range o.ids {
		s, err := r.Open(ctx, id)
		if err == nil {
			err = a.waiter(s, &o.lock).Do(ctx, func() error { return s.Remove(ctx, o.force) })
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, id)
	}
	if err := a.printRemoved(removed); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errorList(errs)
	}
	return nil
}
