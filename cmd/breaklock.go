package cmd

import (
	"github.com/spf13/cobra"
)

func (a *app) newBreakLockCommand() *cobra.Command {
	var force bool
	c := &cobra.Command{
		Use:   "break-lock [ID] [--force]",
		Short: "Remove a session's stale lock",
		Long: `Remove the session.next left by a writer that crashed or was killed, so that
the session can be saved again. The current checkpoint is not touched.

A lock is stale when no process holds its flock (the kernel releases it when
a writer dies), or when its writer ran on this host under a pid that no
longer exists. A live lock is refused with exit status 4 unless --force: only
use it when you know the writer is gone, for example on a network file system
where flock cannot prove it. A session that is not locked exits 0.`,
		Example: `  ckpt break-lock "$S"
  ckpt break-lock --force "$S"`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := a.sessionFromArgs(c, args)
			if err != nil {
				return err
			}
			l, err := s.BreakLock(c.Context(), force)
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(breakLockJSON{ID: s.ID(), Broken: l != nil, Lock: newLockJSON(l)})
			}
			if l == nil {
				a.notice("session %s was not locked", s.ID())
			} else {
				a.notice("removed the %s lock of session %s held by %s (%s)", lockState(l), s.ID(), l.Owner, l.Reason)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "remove the lock even if its writer looks alive")
	return c
}
