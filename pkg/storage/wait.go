package storage

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Waiter retries an operation while it fails because a live writer holds the
// session's lock, with jittered exponential backoff, up to Max. A stale lock
// is never waited on: without BreakStale it is returned at once.
//
// The zero Waiter tries once. A Waiter is safe for concurrent use if its
// BreakStale is.
type Waiter struct {
	// Max is how long to keep retrying while the lock is live.
	Max time.Duration
	// BreakStale, if set, is called when the lock is stale; when it returns
	// nil, the operation is retried at once.
	BreakStale func(ctx context.Context, stale *LockedError) error

	clock clock
}

// Backoff bounds: the first retry comes after about MinBackoff, each wait
// doubles, none exceeds MaxBackoff, and each is jittered to between half
// and all of its length so that waiting writers do not retry in step.
const (
	MinBackoff = 2 * time.Millisecond
	MaxBackoff = 500 * time.Millisecond
)

// maxBreaks bounds how many stale locks one Do breaks: more means something
// keeps planting them.
const maxBreaks = 8

type clock interface {
	Now() time.Time
	Sleep(ctx context.Context, d time.Duration) error
	Jitter() float64 // in [0, 1)
}

type realClock struct{}

func (realClock) Now() time.Time  { return time.Now() }
func (realClock) Jitter() float64 { return rand.Float64() }
func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Do calls op until it succeeds, fails with anything but a *LockedError, or
// the lock stays live past Max; then it returns op's last error. The
// LockedError it returns names the owner, as op reported it.
func (w *Waiter) Do(ctx context.Context, op func() error) error {
	clk := w.clock
	if clk == nil {
		clk = realClock{}
	}
	deadline := clk.Now().Add(w.Max)
	backoff := MinBackoff
	breaks := 0
	for {
		err := op()
		var le *LockedError
		if !errors.As(err, &le) || le.Lost {
			return err
		}
		if le.Stale {
			if w.BreakStale == nil || breaks == maxBreaks {
				return err
			}
			breaks++
			if berr := w.BreakStale(ctx, le); berr != nil {
				return errors.Join(err, berr)
			}
			continue
		}
		left := deadline.Sub(clk.Now())
		if left <= 0 {
			return err
		}
		d := min(backoff/2+time.Duration(clk.Jitter()*float64(backoff/2)), left)
		if serr := clk.Sleep(ctx, d); serr != nil {
			return errors.Join(err, serr)
		}
		backoff = min(2*backoff, MaxBackoff)
	}
}
