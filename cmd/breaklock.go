package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newBreakLockCommand() *cobra.Command {
	var o breakLockOptions
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
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			o.id = id
			if c.Flags().Changed("step") {
				if err := validStepName(o.step); err != nil {
					return err
				}
			}
			return a.runBreakLock(c.Context(), o)
		},
	}
	c.Flags().BoolVar(&o.force, "force", false, "remove the lock even if its writer looks alive")
	c.Flags().StringVar(&o.step, "step", "", "remove the claim of step `NAME` instead of the session's lock")
	return c
}

type breakLockOptions struct {
	id    string
	step  string // "": the session's lock
	force bool
}

// runBreakLock removes the session's lock, or the claim of a step, and
// says what it removed.
func (a *app) runBreakLock(ctx context.Context, o breakLockOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	var l *storage.Lock
	if o.step != "" {
		l, err = s.BreakStepClaim(ctx, o.step, o.force)
	} else {
		l, err = s.BreakLock(ctx, o.force)
	}
	if err != nil {
		return err
	}
	return a.printBrokenLock(s.ID(), o.step, l)
}
