package repository

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// These tests are in package repository, not repository_test, to reach
// testHookGCListed.

func gcTestRepo(t *testing.T) *Repository {
	t.Helper()
	r, err := Open(filepath.Join(t.TempDir(), "sessions"))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func gcTestCreate(t *testing.T, r *Repository, prefix string, flags ...string) *storage.Session {
	t.Helper()
	s, err := r.Create(t.Context(), CreateOptions{Prefix: prefix, Flags: flags})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func gcTestSave(t *testing.T, s *storage.Session, payload string, opts ...storage.SaveOption) {
	t.Helper()
	if _, err := s.Save(t.Context(), strings.NewReader(payload), opts...); err != nil {
		t.Fatal(err)
	}
}

// gcTestDamage makes d's current checkpoint unreadable, header included.
func gcTestDamage(t *testing.T, d *storage.Session) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(d.Location(), storage.CheckpointFile), []byte("not a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tick waits until the clock has visibly moved on, and returns the time
// between the sessions saved before and after it.
func tick(t *testing.T) time.Time {
	t.Helper()
	time.Sleep(20 * time.Millisecond)
	split := time.Now()
	time.Sleep(20 * time.Millisecond)
	return split
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

func TestLast(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)

	if _, _, err := r.Last(ctx, Filter{}); !errors.Is(err, ErrNoMatch) {
		t.Fatalf("Last in a repository that does not exist: %v, want ErrNoMatch", err)
	}
	old := gcTestCreate(t, r, "nightly", "incomplete")
	done := gcTestCreate(t, r, "nightly", "incomplete", "submitted")
	other := gcTestCreate(t, r, "weekly", "incomplete")
	time.Sleep(5 * time.Millisecond)
	// The save makes old the youngest, whatever the creation order.
	gcTestSave(t, old, "state")

	tests := []struct {
		name string
		f    Filter
		want string // "" for ErrNoMatch
	}{
		{"everything", Filter{}, old.ID()},
		{"prefix", Filter{Prefix: "weekly"}, other.ID()},
		{"prefix is slugged", Filter{Prefix: "Weekly"}, other.ID()},
		{"flag", Filter{Prefix: "nightly", Flags: []string{"submitted"}}, done.ID()},
		{"no-flag", Filter{Flags: []string{"incomplete"}, NoFlags: []string{"submitted"}}, old.ID()},
		{"no-flag excludes all", Filter{Prefix: "weekly", NoFlags: []string{"incomplete"}}, ""},
		{"no such prefix", Filter{Prefix: "monthly"}, ""},
		{"no such flag", Filter{Flags: []string{"done"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, damaged, err := r.Last(ctx, tt.f)
			if len(damaged) != 0 {
				t.Errorf("damaged = %v, want none", damaged)
			}
			if tt.want == "" {
				if !errors.Is(err, ErrNoMatch) || st != nil {
					t.Fatalf("Last = %v, %v; want ErrNoMatch", st, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st.ID != tt.want {
				t.Errorf("Last = %s, want %s", st.ID, tt.want)
			}
		})
	}
}

// A damaged session might have been the youngest: Last still finds the
// youngest intact one, and names every damaged one that matched the prefix.
func TestLastDamaged(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)
	good := gcTestCreate(t, r, "nightly", "incomplete")
	bad1 := gcTestCreate(t, r, "nightly", "incomplete")
	bad2 := gcTestCreate(t, r, "nightly")
	elsewhere := gcTestCreate(t, r, "weekly")
	for _, d := range []*storage.Session{bad1, bad2, elsewhere} {
		gcTestDamage(t, d)
	}

	st, damaged, err := r.Last(ctx, Filter{Prefix: "nightly", Flags: []string{"incomplete"}})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != good.ID() {
		t.Errorf("Last = %s, want %s", st.ID, good.ID())
	}
	var got []string
	for _, e := range damaged {
		if e.Err == nil || e.Status != nil {
			t.Errorf("damaged entry %s has Err %v, Status %v", e.ID, e.Err, e.Status)
		}
		got = append(got, e.ID)
	}
	want := []string{bad1.ID(), bad2.ID()}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("damaged = %v, want %v (the damaged sessions with the prefix)", got, want)
	}

	gcTestDamage(t, good)
	if _, damaged, err := r.Last(ctx, Filter{Prefix: "nightly"}); !errors.Is(err, ErrNoMatch) || len(damaged) != 3 {
		t.Errorf("Last with every match damaged = %d damaged, %v; want 3 and ErrNoMatch", len(damaged), err)
	}
}

func TestGC(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)
	idle := gcTestCreate(t, r, "idle")
	gcTestSave(t, idle, "old state")
	idleDone := gcTestCreate(t, r, "idle", "done")
	split := tick(t)
	young := gcTestCreate(t, r, "young", "done")
	young2 := gcTestCreate(t, r, "young")

	// Stale leftovers, backdated: a lock whose writer is gone (a copy of a
	// checkpoint: it names an owner, and nobody holds its flock), an orphaned
	// temporary file and the trash of an interrupted removal. Their
	// sessions are young, so only they go. (The orphans are in a session
	// without a stale lock: breaking a lock sweeps every orphan of its
	// session, whatever its age.)
	long := time.Now().Add(-2 * time.Hour)
	cp, err := os.ReadFile(filepath.Join(young.Location(), storage.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	next := filepath.Join(young.Location(), storage.NextFile)
	orphan := filepath.Join(young2.Location(), storage.TempPrefix+"orphan")
	trash := filepath.Join(r.Root(), storage.TrashPrefix+"gone-aaaaaaaaaaaa-0123")
	for _, p := range []string{next, orphan} {
		if err := os.WriteFile(p, cp, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(trash, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{next, orphan, trash} {
		if err := os.Chtimes(p, long, long); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh orphan is left alone: its writer may still be preparing it.
	fresh := filepath.Join(young2.Location(), storage.TempPrefix+"fresh")
	if err := os.WriteFile(fresh, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	// Now is an hour after split, so the sessions saved before split are
	// idle for more than an hour, and the leftovers for more than that.
	opts := GCOptions{OlderThan: time.Hour, Now: split.Add(time.Hour)}

	t.Run("dry run", func(t *testing.T) {
		o := opts
		o.DryRun = true
		res, err := r.GC(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, "Removed", res.Removed, idle.ID(), idleDone.ID())
		checkIDs(t, "Swept", res.Swept, next, orphan, trash)
		for _, p := range []string{idle.Location(), idleDone.Location(), next, orphan, trash} {
			if !exists(t, p) {
				t.Errorf("dry run removed %s", p)
			}
		}
	})
	t.Run("flag", func(t *testing.T) {
		o := opts
		o.Flags = []string{"done"}
		o.DryRun = true
		res, err := r.GC(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, "Removed", res.Removed, idleDone.ID())
	})
	t.Run("remove", func(t *testing.T) {
		res, err := r.GC(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkIDs(t, "Removed", res.Removed, idle.ID(), idleDone.ID())
		checkIDs(t, "Swept", res.Swept, next, orphan, trash)
		if len(res.Kept) != 0 || len(res.Errors) != 0 {
			t.Errorf("Kept = %v, Errors = %v; want none", res.Kept, res.Errors)
		}
		for _, p := range []string{idle.Location(), idleDone.Location(), next, orphan, trash} {
			if exists(t, p) {
				t.Errorf("%s is still there", p)
			}
		}
		for _, p := range []string{young.Location(), young2.Location(), fresh} {
			if !exists(t, p) {
				t.Errorf("%s was removed", p)
			}
		}
		for _, d := range []*storage.Session{young, young2} {
			if st, err := d.Stat(ctx); err != nil || st.Lock != nil {
				t.Errorf("young session after gc: lock %+v, %v; want no lock", st.Lock, err)
			}
		}
	})
	t.Run("nothing left", func(t *testing.T) {
		res, err := r.GC(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Removed)+len(res.Swept)+len(res.Kept)+len(res.Errors) != 0 {
			t.Errorf("second gc = %+v, want nothing to do", res)
		}
	})
}

func TestGCEmptyRepository(t *testing.T) {
	res, err := gcTestRepo(t).GC(t.Context(), GCOptions{OlderThan: time.Hour})
	if err != nil || len(res.Removed)+len(res.Swept)+len(res.Kept)+len(res.Errors) != 0 {
		t.Errorf("GC of a repository that does not exist = %+v, %v; want nothing", res, err)
	}
}

// holdWriter starts a save into s that blocks mid-payload, so that s has a
// live writer until the test ends.
func holdWriter(t *testing.T, s *storage.Session) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = s.Save(context.Background(), pr)
	}()
	if _, err := pw.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pw.CloseWithError(errors.New("test over"))
		<-done
	})
}

func TestGCLiveWriterAndDamaged(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)
	busy := gcTestCreate(t, r, "busy")
	broken := gcTestCreate(t, r, "broken")
	idle := gcTestCreate(t, r, "idle")
	gcTestDamage(t, broken)
	holdWriter(t, busy)
	split := tick(t)

	res, err := r.GC(ctx, GCOptions{OlderThan: time.Hour, Now: split.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "Removed", res.Removed, idle.ID())
	if len(res.Kept) != 1 || res.Kept[0].ID != busy.ID() || !strings.Contains(res.Kept[0].Reason, "a writer is live: pid ") {
		t.Errorf("Kept = %+v, want %s with a live writer", res.Kept, busy.ID())
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0].Error(), "skipped damaged session: session "+broken.ID()) {
		t.Errorf("Errors = %v, want one naming %s", res.Errors, broken.ID())
	}
	for _, d := range []*storage.Session{busy, broken} {
		if !exists(t, d.Location()) {
			t.Errorf("%s was removed", d.ID())
		}
	}
	if exists(t, idle.Location()) {
		t.Errorf("%s is still there", idle.ID())
	}
}

// A session listed as idle but saved before GC gets to it is kept: GC looks
// again just before it removes.
func TestGCKeepsSessionSavedAfterListing(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)
	resumed := gcTestCreate(t, r, "resumed")
	idle := gcTestCreate(t, r, "idle")
	split := tick(t)
	// cutoff is split: the save below, after it, makes resumed young.
	testHookGCListed = func() { gcTestSave(t, resumed, "resumed state") }
	t.Cleanup(func() { testHookGCListed = nil })

	res, err := r.GC(ctx, GCOptions{OlderThan: time.Hour, Now: split.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	checkIDs(t, "Removed", res.Removed, idle.ID())
	cp, err := resumed.Load(ctx)
	if err != nil {
		t.Fatalf("the session saved during gc: %v", err)
	}
	defer cp.Close()
	if b, _ := io.ReadAll(cp); string(b) != "resumed state" {
		t.Errorf("payload = %q", b)
	}
}

// GC races with processes that create sessions: it never fails because of
// them and never removes one created after its cutoff, and every create
// succeeds.
func TestGCConcurrentCreate(t *testing.T) {
	ctx := t.Context()
	r := gcTestRepo(t)
	var old []string
	for range 50 {
		old = append(old, gcTestCreate(t, r, "old").ID())
	}
	split := tick(t) // every session created from here on is younger than cutoff

	var (
		mu      sync.Mutex
		created []string
		failed  []error
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				d, err := r.Create(ctx, CreateOptions{Prefix: "new", Flags: []string{"incomplete"}})
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					created = append(created, d.ID())
				}
				mu.Unlock()
			}
		}()
	}
	opts := GCOptions{OlderThan: time.Hour, Now: split.Add(time.Hour)}
	var removed []string
	for range 10 {
		res, err := r.GC(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Errors) != 0 || len(res.Kept) != 0 {
			t.Errorf("GC during creates: Errors = %v, Kept = %v; want none", res.Errors, res.Kept)
		}
		removed = append(removed, res.Removed...)
	}
	close(stop)
	wg.Wait()

	if len(failed) != 0 {
		t.Errorf("%d creates failed during gc, first: %v", len(failed), failed[0])
	}
	if len(created) == 0 {
		t.Fatal("no session was created during gc")
	}
	checkIDs(t, "Removed", removed, old...)
	for _, id := range created {
		s, err := r.Open(context.Background(), id)
		if err == nil {
			_, err = s.Stat(ctx)
		}
		if err != nil {
			t.Errorf("session %s, created after the cutoff: %v", id, err)
		}
	}
	t.Logf("%d sessions created during %d gc runs", len(created), 10)
}

func checkIDs(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// A session a creator has made the directory of, but not yet taken the
// lock of nor written, is not idle: gc keeps it while the directory is
// young, and removes it once it is older than the cutoff (its creator
// died).
func TestGCHalfCreated(t *testing.T) {
	r := gcTestRepo(t)
	gcTestCreate(t, r, "other") // makes the repository
	half := filepath.Join(r.Root(), "half-aaaaaaaaaaaa")
	if err := os.Mkdir(half, 0o700); err != nil {
		t.Fatal(err)
	}
	res, err := r.GC(t.Context(), GCOptions{OlderThan: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.Removed, "half-aaaaaaaaaaaa") {
		t.Fatalf("gc removed a session made a moment ago and not yet locked: %+v", res)
	}
	if _, err := os.Stat(half); err != nil {
		t.Fatalf("the half-made session is gone: %v", err)
	}
	old := time.Now().Add(-2 * time.Minute)
	if err := os.Chtimes(half, old, old); err != nil {
		t.Fatal(err)
	}
	if res, err = r.GC(t.Context(), GCOptions{OlderThan: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(res.Removed, "half-aaaaaaaaaaaa") {
		t.Errorf("gc kept a half-made session abandoned 2 minutes ago: %+v", res)
	}
}
