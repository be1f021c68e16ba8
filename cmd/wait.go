package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// lockFlags are the flags of every verb that writes: how long to wait for a
// live writer, and whether to break a stale lock.
type lockFlags struct {
	wait       time.Duration
	breakStale bool
}

func (f *lockFlags) register(c *cobra.Command) {
	c.Flags().DurationVar(&f.wait, "wait", 0, "wait up to `DURATION` (e.g. 30s) for a live writer to finish, instead of failing at once with exit 4")
	c.Flags().BoolVar(&f.breakStale, "break-stale", false, "break a lock whose writer is provably gone, and go on (also CKPT_BREAK_STALE=1)")
}

// waiter returns the Waiter that runs a writing operation on s as the flags
// and the environment ask.
func (a *app) waiter(s *storage.Session, f *lockFlags) *storage.Waiter {
	w := &storage.Waiter{Max: f.wait}
	if f.breakStale || a.getenv("CKPT_BREAK_STALE") == "1" {
		w.BreakStale = func(ctx context.Context, stale *storage.LockedError) error {
			l, err := s.BreakLock(ctx, false)
			if err != nil {
				return err
			}
			if l != nil {
				a.notice("broke the stale lock of session %s held by %s (%s)", s.ID(), l.Owner, l.Reason)
			}
			return nil
		}
	}
	return w
}
