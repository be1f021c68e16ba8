package cmd

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// lockFlags are the flags of every verb that writes: how long to wait for a
// live writer, and whether to break a stale lock.
type lockFlags struct {
	wait       time.Duration
	breakStale bool
	flags      *pflag.FlagSet
}

func (f *lockFlags) register(c *cobra.Command) {
	f.flags = c.Flags()
	durationVar(f.flags, &f.wait, "wait", 0, "wait up to `DURATION` (30s, 10m, 1d) for a live writer to finish, instead of failing at once with exit 4")
	f.flags.BoolVar(&f.breakStale, "break-stale", false, "break a lock whose writer is provably gone, and go on (default $CKPT_BREAK_STALE, else false)")
}

// resolve settles, once the flags are parsed, whether to break a stale
// lock: --break-stale, given either way, beats $CKPT_BREAK_STALE, which
// checkEnv has checked before the command ran. The waiter then reads no
// flag.
func (f *lockFlags) resolve(a *app) error {
	if f.flags == nil {
		return nil
	}
	breakStale, err := a.envFlagBool(f.flags, "break-stale", "CKPT_BREAK_STALE")
	if err != nil {
		return err
	}
	f.breakStale, f.flags = breakStale, nil
	return nil
}

// waiter returns the Waiter that runs a writing operation on s as the flags
// and the environment ask. Flags not resolved yet are resolved here (see
// resolve).
func (a *app) waiter(s *storage.Session, f *lockFlags) *storage.Waiter {
	w := &storage.Waiter{Max: f.wait}
	breakStale := f.breakStale
	if f.flags != nil {
		breakStale, _ = a.envFlagBool(f.flags, "break-stale", "CKPT_BREAK_STALE")
	}
	if breakStale {
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
