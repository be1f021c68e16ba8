package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

func sortNewestFirst(gens []uint64) {
	slices.SortFunc(gens, func(a, b uint64) int { return cmp.Compare(b, a) })
}

// path names object name of the session for messages.
func (s *Session) path(name string) string { return s.b.Location() + "/" + name }

// History returns every generation kept, newest first, each verified. A
// generation that holds no payload (a session never saved) is not listed.
func (s *Session) History(ctx context.Context) ([]Generation, error) {
	cur, err := s.readManifest(ctx, CheckpointFile)
	var out []Generation
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := s.b.Check(ctx); err != nil {
			return nil, err
		}
		return nil, nil
	case err != nil:
		out = append(out, Generation{Current: true, Path: s.path(CheckpointFile), Err: err})
		cur = nil
	}
	checked := map[string]error{} // payload object → verdict
	if cur != nil {
		if g, ok := s.generation(ctx, cur, checked); ok {
			g.Current = true
			out = append(out, g)
		}
	}
	gens, err := s.keptGenerations(ctx, cur)
	if err != nil {
		return nil, err
	}
	for _, n := range gens {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m, err := s.readManifest(ctx, historyName(n))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue // pruned while we looked
		case err != nil:
			out = append(out, Generation{Generation: n, Path: s.path(historyName(n)), Err: err})
			continue
		}
		if g, ok := s.generation(ctx, m, checked); ok {
			out = append(out, g)
		}
	}
	return out, nil
}

// generation verifies the payload of m; ok is false if it has none.
func (s *Session) generation(ctx context.Context, m *manifest, checked map[string]error) (Generation, bool) {
	if !m.hasPayload() {
		return Generation{}, false
	}
	g := Generation{Generation: m.h.Generation, Path: s.path(m.name), Header: m.h, Size: m.size()}
	key := m.payloadKey()
	err, seen := checked[key]
	if !seen || m.h.Format == 1 {
		var cp *Checkpoint
		if cp, err = s.openPayload(ctx, m); err == nil {
			cp.Close()
		}
		checked[key] = err
	}
	g.Err = err
	return g, true
}

// Verify checks every generation, the lock and the session's objects, and
// returns the problems found.
func (s *Session) Verify(ctx context.Context) ([]Problem, error) {
	gens, err := s.History(ctx)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, g := range gens {
		var ce *checkpoint.CorruptError
		switch {
		case errors.As(g.Err, &ce):
			out = append(out, Problem{Kind: ProblemCorrupt, Path: g.Path, Detail: g.Err.Error()})
		case g.Err != nil:
			out = append(out, Problem{Kind: ProblemUnreadable, Path: g.Path, Detail: g.Err.Error()})
		}
	}
	l, err := s.b.InspectLock(ctx, NextFile)
	if err != nil {
		return nil, s.errorf("inspect lock: %w", err)
	}
	if l != nil && l.Stale {
		out = append(out, Problem{Kind: ProblemStaleLock, Path: s.path(NextFile), Detail: fmt.Sprintf("held by %s: %s", l.Owner, l.Reason)})
	}
	// While a writer lives, what it has written is not reachable yet.
	if l == nil || l.Stale {
		garbage, unknown, err := s.unreachable(ctx, s.now().Add(-CreateGrace))
		if err != nil {
			return nil, err
		}
		for _, name := range garbage {
			out = append(out, Problem{Kind: ProblemOrphan, Path: s.path(name), Detail: "left by a save that did not complete, or not removed after one; gc removes it"})
		}
		for _, name := range unknown {
			out = append(out, Problem{Kind: ProblemOrphan, Path: s.path(name), Detail: "not a file ckpt writes"})
		}
	}
	if a, ok := s.b.(Auditor); ok {
		more, err := a.Audit(ctx)
		if err != nil {
			return nil, s.errorf("%w", err)
		}
		out = append(out, more...)
	}
	return out, nil
}

// unreachable lists the session's objects and returns the history
// manifests and payloads that the current manifest no longer reaches, last
// changed before cutoff, and the objects whose names ckpt never writes.
// Nothing is garbage when the current manifest cannot be read, or is a
// format-1 file (whose history is every session.<n>).
func (s *Session) unreachable(ctx context.Context, cutoff time.Time) (garbage, unknown []string, err error) {
	objs, err := s.b.List(ctx)
	if err != nil {
		return nil, nil, s.errorf("list: %w", err)
	}
	cur, cerr := s.readManifest(ctx, CheckpointFile)
	canTell := cerr == nil && cur.h.Format != 1
	live := map[string]bool{}
	if canTell {
		if cur.h.Payload != nil {
			live[cur.h.Payload.Object] = true
		}
		for _, k := range cur.h.Kept {
			live[historyName(k.Generation)] = true
			live[k.Payload] = true
		}
	}
	for _, o := range objs {
		_, isHistory := parseHistoryName(o.Name)
		switch {
		case o.Name == CheckpointFile || o.Name == NextFile:
		case !isHistory && !strings.HasPrefix(o.Name, PayloadPrefix):
			unknown = append(unknown, o.Name)
		case canTell && !live[o.Name] && o.Modified.Before(cutoff):
			garbage = append(garbage, o.Name)
		}
	}
	return garbage, unknown, nil
}

// Sweep removes a stale lock, what interrupted writers left, and the
// objects no generation reaches, last changed before cutoff, and returns
// where they were; with dryRun it only returns them. Unreachable objects
// are removed under the session's lock, so that a save in progress keeps
// what it has written; a session with a live writer keeps them, whether
// that writer is in another process or in this one. Sweep does not wait
// for writers, but writers of this process wait for it (see Begin).
func (s *Session) Sweep(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	if err := s.b.Check(ctx); err != nil {
		return nil, err
	}
	var swept []string
	l, err := s.b.InspectLock(ctx, NextFile)
	if err != nil {
		return nil, s.errorf("inspect lock: %w", err)
	}
	if l != nil && l.Stale && l.Since.Before(cutoff) {
		if !dryRun {
			if _, err := s.breakLock(ctx, false); err != nil {
				return swept, err
			}
		}
		swept = append(swept, s.path(NextFile))
		l = nil
	}
	tmp, err := s.b.SweepTemp(ctx, cutoff, dryRun)
	swept = append(swept, tmp...)
	if err != nil {
		return swept, s.errorf("%w", err)
	}
	if l != nil {
		return swept, nil
	}
	if !dryRun {
		owner := CurrentOwner("ckpt gc", s.now())
		pass, _ := tryGate(s.b, owner)
		if pass == nil {
			return swept, nil // a writer of this process is saving
		}
		defer pass.leave()
		held, err := s.b.Lock(ctx, NextFile, owner)
		var le *LockedError
		if errors.As(err, &le) {
			return swept, nil // a writer came: its objects are not garbage
		}
		if err != nil {
			return swept, err
		}
		defer held.Release(context.WithoutCancel(ctx))
	}
	// However early the cutoff, what a writer may still commit is spared: on
	// S3 a writer whose live lease was broken by force learns it only at
	// its next renewal.
	garbage, _, err := s.unreachable(ctx, minTime(cutoff, s.now().Add(-garbageGrace)))
	if err != nil {
		return swept, err
	}
	if !dryRun {
		if err := s.b.Delete(ctx, garbage...); err != nil {
			return swept, s.errorf("%w", err)
		}
	}
	for _, name := range garbage {
		swept = append(swept, s.path(name))
	}
	return swept, nil
}

// garbageGrace is how old an unreachable object must be before Sweep
// removes it.
const garbageGrace = time.Hour

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// BreakLock removes a stale lock, or a live one when force is set, and
// returns what it removed; it returns nil, nil when there was no lock. When
// the lock it removes is that of a writer of this process, the writers of
// this process waiting for that one (see Begin) go ahead at once: the
// broken writer can no longer commit.
func (s *Session) BreakLock(ctx context.Context, force bool) (*Lock, error) {
	if err := s.b.Check(ctx); err != nil {
		return nil, err
	}
	return s.breakLock(ctx, force)
}

func (s *Session) breakLock(ctx context.Context, force bool) (*Lock, error) {
	l, err := s.b.BreakLock(ctx, NextFile, force)
	if err == nil {
		revokeGate(s.b, l)
	}
	return l, err
}

// Remove deletes the session. Unless force is set, it takes the session's
// lock first (breaking a stale one), so that no save can complete unseen
// while it removes, and a session with a live writer is refused with a
// *LockedError, whether that writer is in another process or in this one:
// Remove does not wait for writers, but writers of this process wait for it
// (see Begin).
func (s *Session) Remove(ctx context.Context, force bool, opts ...RemoveOption) error {
	c := NewRemoveConfig(opts)
	if err := s.b.Check(ctx); err != nil {
		return err
	}
	if !force {
		owner := CurrentOwner("ckpt remove", s.now())
		pass, other := tryGate(s.b, owner)
		if pass == nil {
			return s.lockedInProcess(ctx, other)
		}
		defer pass.leave()
		held, err := s.lockForRemove(ctx, owner)
		if err != nil {
			return err
		}
		// After Destroy the lock is gone with the session.
		defer held.Release(context.WithoutCancel(ctx))
	}
	if c.IfGeneration != nil {
		var gen uint64
		m, err := s.readManifest(ctx, CheckpointFile)
		switch {
		case err == nil:
			gen = m.h.Generation
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if gen != *c.IfGeneration {
			return s.errorf("%w: expected generation %d, the current one is %d", ErrConflict, *c.IfGeneration, gen)
		}
	}
	return s.b.Destroy(ctx)
}

// lockForRemove takes the session's lock for Remove, breaking a stale one:
// a session whose writer is gone can be removed.
func (s *Session) lockForRemove(ctx context.Context, owner *checkpoint.Owner) (Held, error) {
	for attempt := 0; ; attempt++ {
		held, err := s.b.Lock(ctx, NextFile, owner)
		var le *LockedError
		if !errors.As(err, &le) || !le.Stale || attempt == 3 {
			return held, err
		}
		if _, err := s.b.BreakLock(ctx, NextFile, false); err != nil {
			return nil, err
		}
	}
}

// lockedInProcess is the *LockedError of a session whose gate a writer of
// this process, owner, is past: its lock as the backend shows it, or, while
// that writer is between the gate and the lock, as far as it is known.
func (s *Session) lockedInProcess(ctx context.Context, owner *checkpoint.Owner) error {
	l, err := s.b.InspectLock(ctx, NextFile)
	if err != nil {
		return s.errorf("inspect lock: %w", err)
	}
	if l == nil || l.Stale {
		l = &Lock{Owner: owner, Reason: "a writer of this process is saving", Since: s.now()}
	}
	return &LockedError{Session: s.b.ID(), Lock: *l}
}
