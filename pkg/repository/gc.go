package repository

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// ErrNoMatch reports that no session matches a filter.
var ErrNoMatch = errors.New("no session matches")

// Last returns the youngest intact session that matches f, and the damaged
// entries that might have matched: a damaged session's age cannot be read,
// so any of them might have been the youngest. It fails with ErrNoMatch when
// no intact session matches.
//
// It reads manifests youngest first, by the time each was last written, and
// stops as soon as no older session can be younger than the one it found: a
// manifest is written after the save time it records, so one last written
// before that time (less clockSkew, for manifests written by other hosts)
// cannot hold a later save.
func (r *Repository) Last(ctx context.Context, f Filter) (*storage.Status, []Entry, error) {
	cands, err := r.b.saved(ctx, true)
	if err != nil {
		return nil, nil, err
	}
	cands = slices.DeleteFunc(cands, func(c candidate) bool { return !f.keepID(c.id) })
	slices.SortFunc(cands, func(a, b candidate) int {
		return cmp.Or(b.modified.Compare(a.modified), cmp.Compare(a.id, b.id))
	})
	var (
		found   *storage.Status
		damaged []Entry
	)
	written := make(map[string]time.Time, len(cands))
	for _, c := range cands {
		written[c.id] = c.modified
	}
	for len(cands) > 0 {
		if found != nil && cands[0].modified.Before(found.Modified.Add(-clockSkew)) {
			break
		}
		n := min(len(cands), listConcurrency)
		entries, err := r.statAll(ctx, cands[:n], f)
		cands = cands[n:]
		if err != nil {
			return nil, nil, err
		}
		for _, e := range entries {
			switch {
			case e.Err != nil:
				damaged = append(damaged, e)
			case found == nil || younger(e.Status, found):
				found = e.Status
			}
		}
	}
	if found == nil {
		return nil, damaged, ErrNoMatch
	}
	// Only a damaged session written after the one found might have been
	// younger.
	damaged = slices.DeleteFunc(damaged, func(e Entry) bool {
		return written[e.ID].Before(found.Modified.Add(-clockSkew))
	})
	return found, damaged, nil
}

// clockSkew is how far the clocks of hosts that share a repository may
// disagree without Last missing the youngest session.
const clockSkew = 5 * time.Minute

func younger(a, b *storage.Status) bool {
	return cmp.Or(b.Modified.Compare(a.Modified), cmp.Compare(a.ID, b.ID)) < 0
}

// GCOptions select what GC removes.
type GCOptions struct {
	// OlderThan is how long a session must have been idle (no save) to be
	// removed, and how old a stale lock or orphaned file must be to be swept.
	OlderThan time.Duration
	// Flags limits removal to sessions with all of these flags set.
	Flags []string
	// NoFlags limits removal to sessions with none of these flags set.
	NoFlags []string
	// Key, if set, limits removal to the sessions created with this key.
	Key string
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
	keep := Filter{Flags: o.Flags, NoFlags: o.NoFlags, Key: o.Key}
	// Sessions are collected a few at a time, as List reads them: on S3
	// each needs requests of its own. Each goroutine fills its own result,
	// merged in the listing's order.
	parts := make([]GCResult, len(entries))
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, listConcurrency)
	)
	for i, e := range entries {
		if ctx.Err() != nil {
			break
		}
		if e.Err != nil {
			parts[i].Errors = []error{fmt.Errorf("skipped damaged session: %w", e.Err)}
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r.gcSession(ctx, e.Status, cutoff, keep, o.DryRun, &parts[i])
		})
	}
	wg.Wait()
	for _, p := range parts {
		res.Removed = append(res.Removed, p.Removed...)
		res.Swept = append(res.Swept, p.Swept...)
		res.Kept = append(res.Kept, p.Kept...)
		res.Errors = append(res.Errors, p.Errors...)
	}
	return res, ctx.Err()
}

// testHookGCListed, when set, runs between GC's listing and its removals.
var testHookGCListed func()

// lastActive returns when the session st describes was last written to: its
// manifest, or the end of its latest step; far in the future while a step
// runs (Status.Steps shows a step whose runner is gone as crashed).
func lastActive(st *storage.Status) time.Time {
	t := st.Modified
	for _, s := range st.Steps {
		if s.State == checkpoint.StepRunning {
			return time.Now().Add(100 * 365 * 24 * time.Hour)
		}
		if end := s.Started.Add(s.Duration); end.After(t) {
			t = end
		}
	}
	return t
}

// gcSession removes the session st describes if it is idle since before
// cutoff and passes keep, and sweeps it otherwise.
func (r *Repository) gcSession(ctx context.Context, st *storage.Status, cutoff time.Time, keep Filter, dryRun bool, res *GCResult) {
	idle := func(st *storage.Status) bool {
		t := lastActive(st)
		if st.Header == nil && st.Lock == nil {
			// Half made: a creator made its directory and has yet to
			// take its lock.
			if b := r.b.born(st.ID); b.After(t) {
				t = b
			}
		}
		return t.Before(cutoff) && keep.keep(st)
	}
	if idle(st) {
		// The listing can be seconds old in a large repository: look
		// again, so that a session saved since then is kept; and look at
		// its steps, which a step records apart from the manifest.
		fresh, err := r.stat(ctx, st.ID, storage.WithSteps())
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
