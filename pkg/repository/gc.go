package repository

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// ErrNoMatch reports that no session matches a filter.
var ErrNoMatch = errors.New("no session matches")

// Last returns the youngest intact session that matches f, and the damaged
// entries that might have matched: a damaged session's age cannot be read,
// so any of them might have been the youngest. It fails with ErrNoMatch when
// no intact session matches.
func (r *Repository) Last(ctx context.Context, f Filter) (*storage.Status, []Entry, error) {
	entries, err := r.List(ctx, f)
	if err != nil {
		return nil, nil, err
	}
	var (
		found   *storage.Status
		damaged []Entry
	)
	for _, e := range entries {
		switch {
		case e.Err != nil:
			damaged = append(damaged, e)
		case found == nil:
			found = e.Status
		}
	}
	if found == nil {
		return nil, damaged, ErrNoMatch
	}
	return found, damaged, nil
}

// GCOptions select what GC removes.
type GCOptions struct {
	// OlderThan is how long a session must have been idle (no save) to be
	// removed, and how old a stale lock or orphaned file must be to be swept.
	OlderThan time.Duration
	// Flags limits removal to sessions with all of these flags set.
	Flags []string
	// DryRun reports what would be removed and removes nothing.
	DryRun bool
	// Now is the time idleness is measured from; time.Now() if zero.
	Now time.Time
}

// GCResult reports what GC did, or with DryRun would do.
type GCResult struct {
	// Removed are the ids of the sessions removed.
	Removed []string
	// Swept are the paths of stale locks, orphaned temporary files and
	// leftovers of interrupted removals that were removed.
	Swept []string
	// Kept are sessions old enough to go that were kept, with why.
	Kept []Kept
	// Errors are the failures GC carried on past, one per session.
	Errors []error
}

// Kept is a session GC did not remove.
type Kept struct {
	ID     string
	Reason string
}

// GC removes sessions idle for longer than o.OlderThan, skipping those with a
// live writer and damaged ones (it reports them), and sweeps stale locks and
// orphaned files older than that from every session. It carries on past
// per-session errors and returns them in the result; its own error is
// non-nil only when the repository cannot be read at all.
func (r *Repository) GC(ctx context.Context, o GCOptions) (*GCResult, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	cutoff := now.Add(-o.OlderThan)
	res := &GCResult{}
	res.Swept, res.Errors = r.b.sweep(cutoff, o.DryRun)
	entries, err := r.List(ctx, Filter{})
	if err != nil {
		return nil, err
	}
	if testHookGCListed != nil {
		testHookGCListed()
	}
	keep := Filter{Flags: o.Flags}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if e.Err != nil {
			res.Errors = append(res.Errors, fmt.Errorf("skipped damaged session: %w", e.Err))
			continue
		}
		r.gcSession(ctx, e.Status, cutoff, keep, o.DryRun, res)
	}
	return res, nil
}

// testHookGCListed, when set, runs between GC's listing and its removals.
var testHookGCListed func()

// gcSession removes the session st describes if it is idle since before
// cutoff and passes keep, and sweeps it otherwise.
func (r *Repository) gcSession(ctx context.Context, st *storage.Status, cutoff time.Time, keep Filter, dryRun bool, res *GCResult) {
	idle := func(st *storage.Status) bool { return st.Modified.Before(cutoff) && keep.keep(st) }
	if idle(st) {
		// The listing can be seconds old in a large repository: look
		// again, so that a session saved since then is kept.
		fresh, err := r.stat(ctx, st.ID)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return
		case err != nil:
			res.Errors = append(res.Errors, err)
			return
		}
		st = fresh
	}
	if idle(st) {
		if st.Lock != nil && !st.Lock.Stale {
			res.Kept = append(res.Kept, Kept{ID: st.ID, Reason: "a writer is live: " + st.Lock.Owner.String()})
			return
		}
		if !dryRun {
			var gen uint64
			if st.Header != nil {
				gen = st.Header.Generation
			}
			// Under the session's lock, and only if nobody saved since the
			// look above: a save that completes while gc runs is never lost.
			err := r.Remove(ctx, st.ID, false, storage.RemoveIfGeneration(gen))
			var locked *storage.LockedError
			switch {
			case errors.Is(err, storage.ErrConflict):
				res.Kept = append(res.Kept, Kept{ID: st.ID, Reason: "saved while gc ran"})
				return
			case errors.As(err, &locked) && !locked.Stale:
				// A writer started since the look above.
				res.Kept = append(res.Kept, Kept{ID: st.ID, Reason: "a writer is live: " + locked.Owner.String()})
				return
			case errors.Is(err, storage.ErrNotFound):
				return
			case err != nil:
				res.Errors = append(res.Errors, err)
				return
			}
		}
		res.Removed = append(res.Removed, st.ID)
		return
	}
	s, err := r.Open(ctx, st.ID)
	if err == nil {
		var swept []string
		swept, err = s.Sweep(ctx, cutoff, dryRun)
		res.Swept = append(res.Swept, swept...)
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		res.Errors = append(res.Errors, err)
	}
}
