package cmd

import (
	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newBreakLockCommand() *cobra.Command {
	var (
		force bool
		step  string
	)
	c := &cobra.Command{
		Use:   "break-lock [ID] [--step NAME] [--force]",
		Short: "Remove a session's stale lock",
		Long: `Remove the session.next left by a writer that crashed or was killed, so that
the session can be saved again. The current checkpoint is not touched.

A lock is stale when no process holds its flock (the kernel releases it when
a writer dies), or when its writer ran on this host under a pid that no
longer exists. A live lock is refused with exit status 4 unless --force: only
use it when you know the writer is gone, for example on a network file system
where flock cannot prove it. A session that is not locked exits 0.

With --step NAME, remove the claim of step NAME instead: the claim of a
'ckpt step' or 'ckpt queue' runner that is gone. The next 'ckpt step' of
that step records its attempt as crashed. (It does so by itself for a claim
that is provably stale; --step is for the rest, with --force.)`,
		Example: `  ckpt break-lock "$S"
  ckpt break-lock --force "$S"
  ckpt break-lock "$S" --step integration --force`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := a.sessionFromArgs(c, args)
			if err != nil {
				return err
			}
			var l *storage.Lock
			if c.Flags().Changed("step") {
				if err := validStepName(step); err != nil {
					return err
				}
				l, err = s.BreakStepClaim(c.Context(), step, force)
			} else {
				l, err = s.BreakLock(c.Context(), force)
			}
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(breakLockJSON{ID: s.ID(), Broken: l != nil, Lock: newLockJSON(l)})
			}
			switch {
			case l == nil && step != "":
				a.notice("step %s of session %s was not claimed", step, s.ID())
			case l == nil:
				a.notice("session %s was not locked", s.ID())
			case step != "":
				a.notice("removed the %s claim of step %s of session %s held by %s (%s)", lockState(l), step, s.ID(), l.Owner, l.Reason)
			default:
				a.notice("removed the %s lock of session %s held by %s (%s)", lockState(l), s.ID(), l.Owner, l.Reason)
			}
			return nil
		},
	}
	c.Flags().BoolVar(&force, "force", false, "remove the lock even if its writer looks alive")
	c.Flags().StringVar(&step, "step", "", "remove the claim of step `NAME` instead of the session's lock")
	return c
}
