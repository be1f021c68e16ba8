package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeClock advances only when slept on.
type fakeClock struct {
	now    time.Time
	jitter float64
	sleeps []time.Duration
}

func (c *fakeClock) Now() time.Time  { return c.now }
func (c *fakeClock) Jitter() float64 { return c.jitter }
func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	return nil
}

var (
	liveErr  = &LockedError{Session: "s", Lock: Lock{Reason: "its writer holds the flock"}}
	staleErr = &LockedError{Session: "s", Lock: Lock{Stale: true, Reason: "no process holds its flock"}}
)

func TestWaiterBackoffAndDeadline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jitter float64
	}{{"no jitter", 0}, {"full jitter", 0.999999}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(1000, 0), jitter: tc.jitter}
			w := &Waiter{Max: 3 * time.Second, clock: clk}
			calls := 0
			err := w.Do(context.Background(), func() error { calls++; return liveErr })
			if !errors.Is(err, liveErr) {
				t.Fatalf("after the deadline: %v, want the LockedError", err)
			}
			if calls != len(clk.sleeps)+1 {
				t.Errorf("%d calls for %d sleeps", calls, len(clk.sleeps))
			}
			waited := clk.now.Sub(time.Unix(1000, 0))
			if waited < 3*time.Second || waited > 3*time.Second+MaxBackoff {
				t.Errorf("waited %v in all, want 3s (and never past the deadline by a whole backoff)", waited)
			}
			// Each wait lies between half and all of a backoff that starts
			// at MinBackoff, doubles, and is capped at MaxBackoff (or at the
			// time left).
			backoff := MinBackoff
			for i, d := range clk.sleeps[:len(clk.sleeps)-1] {
				lo, hi := backoff/2, backoff
				if d < lo || d > hi {
					t.Errorf("sleep %d is %v, want in [%v, %v]", i, d, lo, hi)
				}
				backoff = min(2*backoff, MaxBackoff)
			}
			if clk.sleeps[0] > MinBackoff || clk.sleeps[len(clk.sleeps)-2] < MaxBackoff/2 {
				t.Errorf("sleeps do not grow from %v to %v: %v", MinBackoff, MaxBackoff, clk.sleeps)
			}
		})
	}
}

func TestWaiterOutcomes(t *testing.T) {
	otherErr := errors.New("disk on fire")
	for _, tc := range []struct {
		name       string
		max        time.Duration
		results    []error // what op returns, call by call; then nil
		breakStale bool
		wantErr    error
		wantCalls  int
		wantSleeps int
		wantBreaks int
	}{
		{name: "zero Max tries once", max: 0, results: []error{liveErr}, wantErr: liveErr, wantCalls: 1},
		{name: "success after live locks", max: time.Minute, results: []error{liveErr, liveErr, liveErr}, wantCalls: 4, wantSleeps: 3},
		{name: "other errors are not retried", max: time.Minute, results: []error{otherErr}, wantErr: otherErr, wantCalls: 1},
		{name: "stale is reported at once", max: time.Minute, results: []error{staleErr}, wantErr: staleErr, wantCalls: 1},
		{name: "stale is broken when asked", max: 0, results: []error{staleErr}, breakStale: true, wantCalls: 2, wantBreaks: 1},
		{name: "a lost lock is not retried", max: time.Minute, results: []error{&LockedError{Lost: true}}, wantErr: &LockedError{}, wantCalls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{now: time.Unix(0, 0)}
			breaks := 0
			w := &Waiter{Max: tc.max, clock: clk}
			if tc.breakStale {
				w.BreakStale = func(ctx context.Context, le *LockedError) error {
					if !le.Stale {
						t.Errorf("BreakStale called for a live lock")
					}
					breaks++
					return nil
				}
			}
			calls := 0
			err := w.Do(context.Background(), func() error {
				calls++
				if calls <= len(tc.results) {
					return tc.results[calls-1]
				}
				return nil
			})
			var le *LockedError
			switch {
			case tc.wantErr == nil && err != nil:
				t.Errorf("Do = %v, want success", err)
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr) && !(errors.As(tc.wantErr, &le) && errors.As(err, &le)):
				t.Errorf("Do = %v, want %v", err, tc.wantErr)
			}
			if calls != tc.wantCalls || len(clk.sleeps) != tc.wantSleeps || breaks != tc.wantBreaks {
				t.Errorf("calls %d, sleeps %d, breaks %d; want %d, %d, %d", calls, len(clk.sleeps), breaks, tc.wantCalls, tc.wantSleeps, tc.wantBreaks)
			}
		})
	}
}

func TestWaiterContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := &fakeClock{now: time.Unix(0, 0)}
	w := &Waiter{Max: time.Hour, clock: clk}
	calls := 0
	err := w.Do(ctx, func() error {
		calls++
		if calls == 3 {
			cancel()
		}
		return liveErr
	})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, liveErr) {
		t.Fatalf("Do after cancel = %v, want both the lock and the cancellation", err)
	}
	if calls != 3 {
		t.Errorf("%d calls after cancel at the third", calls)
	}
}

func TestWaiterRealClock(t *testing.T) {
	w := &Waiter{Max: 50 * time.Millisecond}
	start := time.Now()
	calls := 0
	err := w.Do(context.Background(), func() error { calls++; return liveErr })
	if !errors.Is(err, liveErr) || calls < 2 {
		t.Fatalf("Do = %v after %d calls", err, calls)
	}
	if el := time.Since(start); el < 50*time.Millisecond {
		t.Errorf("gave up after %v, before Max", el)
	}
}
