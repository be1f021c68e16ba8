package cmd

import (
	"github.com/spf13/cobra"
)

func (a *app) newRemoveCommand() *cobra.Command {
	var (
		force bool
		lock  lockFlags
	)
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
			r, err := a.repository(c.Context())
			if err != nil {
				return err
			}
			removed := []string{}
			var errs []error
			for _, id := range args {
				s, err := r.Open(c.Context(), id)
				if err == nil {
					err = a.waiter(s, &lock).Do(c.Context(), func() error { return s.Remove(c.Context(), force) })
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				removed = append(removed, id)
			}
			if a.json {
				if err := a.printJSON(removedJSON{Removed: removed}); err != nil {
					errs = append(errs, err)
				}
			}
			if len(errs) > 0 {
				return errorList(errs)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "remove even a session with a live writer")
	lock.register(c)
	return c
}
