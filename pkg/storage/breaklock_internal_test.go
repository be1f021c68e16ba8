package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// hookFS is the local file system with hooks run once: beforeCommit when
// a writer creates the temporary file of its new manifest, the last moment
// before its final checks; atRename just before the rename of a manifest
// over session, its commit point.
type hookFS struct {
	osFS
	once, onceRename       sync.Once
	beforeCommit, atRename func()
}

func (f *hookFS) CreateExcl(name string, perm os.FileMode) (file, error) {
	if f.beforeCommit != nil && strings.HasPrefix(filepath.Base(name), TempPrefix+"session-") {
		f.once.Do(f.beforeCommit)
	}
	return f.osFS.CreateExcl(name, perm)
}

func (f *hookFS) Rename(oldpath, newpath string) error {
	if f.atRename != nil && filepath.Base(newpath) == CheckpointFile {
		f.onceRename.Do(f.atRename)
	}
	return f.osFS.Rename(oldpath, newpath)
}

// blockingReader yields first, tells started, waits for release, then
// yields rest.
type blockingReader struct {
	first, rest string
	started     chan struct{}
	release     chan struct{}
	step        int
}

func (r *blockingReader) Read(p []byte) (int, error) {
	switch r.step {
	case 0:
		r.step++
		return copy(p, r.first), nil
	case 1:
		r.step++
		close(r.started)
		<-r.release
		return copy(p, r.rest), nil
	}
	return 0, io.EOF
}

func strictLoad(t *testing.T, s *Session) (uint64, string, error) {
	t.Helper()
	cp, err := s.Load(context.Background(), Strict())
	if err != nil {
		return 0, "", err
	}
	defer cp.Close()
	b, err := io.ReadAll(cp)
	return cp.Header.Generation, string(b), err
}

// A forced BreakLock just before writer A commits (the race the issue
// reproduced with a delay on renameat): another writer B, which took the
// lock after the break and is still writing, must never see its unfinished
// payload made current, A must not report success, and what is current
// afterwards is intact.
func TestBreakLockRaceUnfinishedWriter(t *testing.T) {
	ctx := context.Background()
	a := newTestDir(t)
	sa, err := Init(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Save(ctx, strings.NewReader("base")); err != nil {
		t.Fatal(err)
	}
	b, err := OpenDir(a.path) // another process's view: no hook
	if err != nil {
		t.Fatal(err)
	}
	sb := New(b)
	rb := &blockingReader{first: "B's unfinished ", rest: "payload", started: make(chan struct{}), release: make(chan struct{})}
	var (
		bSaved *Saved
		bErr   error
		bDone  = make(chan struct{})
	)
	hook := &hookFS{beforeCommit: func() {
		if _, err := sb.BreakLock(ctx, true); err != nil {
			t.Errorf("BreakLock(force): %v", err)
			return
		}
		go func() {
			defer close(bDone)
			bSaved, bErr = sb.Save(ctx, rb)
		}()
		select {
		case <-rb.started: // B holds the lock and is writing its payload
		case <-bDone:
			t.Errorf("B's save ended before it wrote its payload: %v", bErr)
		}
	}}
	a.fs = hook
	aSaved, aErr := sa.Save(ctx, strings.NewReader("A's payload"))
	if aErr == nil {
		t.Errorf("A's save returned success (generation %d) although its lock was broken before its commit", aSaved.Header.Generation)
	}
	// B has not finished: whatever is current is intact, and not B's.
	gen, got, err := strictLoad(t, sb)
	switch {
	case err != nil:
		t.Errorf("TORN: while B writes, a strict load fails: %v (A's error: %v)", err, aErr)
	case strings.HasPrefix(got, "B's"):
		t.Errorf("B's unfinished save is current (generation %d)", gen)
	case got != "base" && got != "A's payload":
		t.Errorf("current is %q", got)
	}
	close(rb.release)
	<-bDone
	gen, got, err = strictLoad(t, sb)
	switch {
	case err != nil:
		t.Errorf("TORN: after both saves, a strict load fails: %v (A: %v, B: %v)", err, aErr, bErr)
	case bErr == nil && got != "B's unfinished payload":
		t.Errorf("LOST: B's save returned generation %d, but current is generation %d %q", bSaved.Header.Generation, gen, got)
	}
	t.Logf("A: %v; B: %v; current: generation %d %q", aErr, bErr, gen, got)
	if _, err := sb.Save(ctx, strings.NewReader("after")); err != nil {
		t.Fatalf("the next save: %v", err)
	}
}

// The same race when B completes its whole save before A commits: B's save
// reported success, so it must be what is current afterwards.
func TestBreakLockRaceFinishedWriter(t *testing.T) {
	ctx := context.Background()
	a := newTestDir(t)
	sa, err := Init(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sa.Save(ctx, strings.NewReader("base")); err != nil {
		t.Fatal(err)
	}
	b, err := OpenDir(a.path)
	if err != nil {
		t.Fatal(err)
	}
	sb := New(b)
	var (
		bSaved *Saved
		bErr   error
	)
	a.fs = &hookFS{beforeCommit: func() {
		if _, err := sb.BreakLock(ctx, true); err != nil {
			t.Errorf("BreakLock(force): %v", err)
			return
		}
		bSaved, bErr = sb.Save(ctx, strings.NewReader("B's payload"))
	}}
	_, aErr := sa.Save(ctx, strings.NewReader("A's payload"))
	if aErr == nil {
		t.Errorf("A's save returned success although its lock was broken before its commit")
	}
	gen, got, err := strictLoad(t, sb)
	switch {
	case err != nil:
		t.Errorf("TORN: a strict load fails: %v (A: %v, B: %v)", err, aErr, bErr)
	case bErr == nil && got != "B's payload":
		t.Errorf("LOST: B's save returned generation %d, but current is generation %d %q (A: %v)", bSaved.Header.Generation, gen, got, aErr)
	}
	if _, err := sb.Save(ctx, strings.NewReader("after")); err != nil && !errors.Is(err, ErrConflict) {
		t.Fatalf("the next save: %v", err)
	}
}

// A forced BreakLock that comes while writer A is at its commit point
// waits: A's last checks and its rename happen under the session
// directory's flock, which BreakLock takes too, so the break lands before
// A's checks (A fails) or after its rename (A succeeded), never between.
func TestBreakLockWaitsForCommit(t *testing.T) {
	ctx := context.Background()
	a := newTestDir(t)
	sa, err := Init(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenDir(a.path)
	if err != nil {
		t.Fatal(err)
	}
	sb := New(b)
	var (
		renamed = make(chan struct{})
		broken  = make(chan struct{})
	)
	a.fs = &hookFS{atRename: func() {
		go func() {
			defer close(broken)
			if _, err := sb.BreakLock(ctx, true); err != nil {
				t.Errorf("BreakLock(force): %v", err)
			}
		}()
		select {
		case <-broken:
			t.Error("BreakLock ended while a writer was between its last checks and its rename")
		case <-time.After(200 * time.Millisecond):
		}
		close(renamed)
	}}
	if _, err := sa.Save(ctx, strings.NewReader("A's payload")); err != nil {
		t.Fatalf("A's save, which the break waited for: %v", err)
	}
	<-renamed
	<-broken
	if _, got, err := strictLoad(t, sb); err != nil || got != "A's payload" {
		t.Errorf("after A's save: %q, %v", got, err)
	}
}
