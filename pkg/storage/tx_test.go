package storage

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func txSession(t *testing.T, payload string) *Dir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tx")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := Init(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if payload != "" {
		if _, err := d.Save(context.Background(), strings.NewReader(payload)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func current(t *testing.T, d *Dir) (uint64, string) {
	t.Helper()
	cp, err := d.Load(context.Background(), Strict())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	b, err := io.ReadAll(cp)
	if err != nil {
		t.Fatal(err)
	}
	return cp.Header.Generation, string(b)
}

func TestTxCommitHoldsTheLock(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "one")
	tx, unlock, err := d.Lock(ctx, WithTitle("two"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if tx.Base().Generation != 1 || tx.Next().Generation != 2 || tx.Next().Title != "two" {
		t.Fatalf("base %d, next %d %q", tx.Base().Generation, tx.Next().Generation, tx.Next().Title)
	}
	// While the transaction runs, other writers are locked out and readers
	// see the old checkpoint.
	var le *LockedError
	if _, err := d.Save(ctx, strings.NewReader("intruder")); !errors.As(err, &le) || le.Stale {
		t.Fatalf("save during a transaction: %v, want a live LockedError", err)
	}
	cp, err := tx.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(cp)
	cp.Close()
	if string(b) != "one" {
		t.Fatalf("tx.Load = %q", b)
	}
	saved, err := tx.Commit(ctx, strings.NewReader(string(b)+"+two"))
	if err != nil {
		t.Fatal(err)
	}
	if saved.Header.Generation != 2 {
		t.Errorf("committed generation %d", saved.Header.Generation)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock after commit: %v", err)
	}
	if gen, p := current(t, d); gen != 2 || p != "one+two" {
		t.Errorf("after commit: generation %d %q", gen, p)
	}
	if _, err := d.Save(ctx, strings.NewReader("three")); err != nil {
		t.Errorf("save after the transaction: %v", err)
	}
}

func TestRun(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	failure := errors.New("the step failed")
	for _, tc := range []struct {
		name    string
		fn      func(ctx context.Context, tx Tx) error
		wantErr error
		wantGen uint64
		want    string
	}{
		{"commit", func(ctx context.Context, tx Tx) error {
			_, err := tx.Commit(ctx, strings.NewReader("committed"))
			return err
		}, nil, 2, "committed"},
		{"empty transaction", func(ctx context.Context, tx Tx) error { return nil }, nil, 2, "committed"},
		{"abort on error", func(ctx context.Context, tx Tx) error { return failure }, failure, 2, "committed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Run(ctx, tc.fn)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Run = %v, want %v", err, tc.wantErr)
			}
			if gen, p := current(t, d); gen != tc.wantGen || p != tc.want {
				t.Errorf("after Run: generation %d %q, want %d %q", gen, p, tc.wantGen, tc.want)
			}
			if _, err := os.Lstat(d.file(NextFile)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("session.next after Run: %v", err)
			}
		})
	}
}

// TestTxLostLock breaks a transaction's lock, lets another writer save, and
// checks that the transaction's commit fails instead of overwriting.
func TestTxLostLock(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.BreakLock(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(ctx, strings.NewReader("newer")); err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if _, err := tx.Commit(ctx, strings.NewReader("stale writer")); !errors.As(err, &le) || !le.Lost {
		t.Fatalf("commit after the lock was broken: %v, want a LockedError with Lost", err)
	}
	if gen, p := current(t, d); gen != 2 || p != "newer" {
		t.Errorf("checkpoint is generation %d %q, want the newer save", gen, p)
	}
}

func TestBeginIfGeneration(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	if _, err := d.Begin(ctx, IfGeneration(0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("Begin with a stale generation: %v", err)
	}
	if _, err := os.Lstat(d.file(NextFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Begin left session.next: %v", err)
	}
	tx, err := d.Begin(ctx, IfGeneration(1))
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := tx.Commit(ctx, strings.NewReader("x")); err == nil {
		t.Error("Commit after Abort succeeded")
	}
}

// Remove with RemoveIfGeneration removes only the generation it was told
// about, checked under the lock; a stale lock does not stop a removal.
func TestRemoveIfGeneration(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	if err := d.Remove(ctx, false, RemoveIfGeneration(0)); !errors.Is(err, ErrConflict) {
		t.Fatalf("Remove of a session saved since: %v, want ErrConflict", err)
	}
	if gen, p := current(t, d); gen != 1 || p != "base" {
		t.Fatalf("after a refused Remove: generation %d %q", gen, p)
	}
	if _, err := os.Lstat(d.file(NextFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused Remove left its lock: %v", err)
	}
	// A stale lock (a writer's file whose flock nobody holds).
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dt := tx.(*dirTx)
	if err := os.Link(d.file(NextFile), d.file(NextFile+".keep")); err != nil {
		t.Fatal(err)
	}
	if err := dt.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(d.file(NextFile+".keep"), d.file(NextFile)); err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, false, RemoveIfGeneration(1)); err != nil {
		t.Fatalf("Remove with a stale lock and the right generation: %v", err)
	}
	if _, err := os.Lstat(d.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session still there: %v", err)
	}
}

// While Remove holds the lock, a writer is refused: it never saves into a
// session that is being removed.
func TestRemoveHoldsTheLock(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	w, err := d.lockForRemove(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if _, err := d.Save(ctx, strings.NewReader("late")); !errors.As(err, &le) || le.Stale || le.Owner == nil || le.Owner.Command != "ckpt remove" {
		t.Fatalf("save during a removal: %v, want a live LockedError held by ckpt remove", err)
	}
	if err := w.abort(); err != nil {
		t.Fatal(err)
	}
}

// A lock file opened just before its writer commits (renames it to session
// and lets go of its flock) is no lock: it must not be judged stale.
func TestInspectAfterCommit(t *testing.T) {
	ctx := context.Background()
	d := txSession(t, "base")
	tx, err := d.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(d.file(NextFile)) // an inspector's open, before the commit
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tx.Commit(ctx, strings.NewReader("next")); err != nil {
		t.Fatal(err)
	}
	if state := probeFlock(f, unix.LOCK_SH); state != flockFree {
		t.Fatalf("flock after commit: %v", state)
	}
	if !sameFile(f, d.file(CheckpointFile)) || sameFile(f, d.file(NextFile)) {
		t.Fatal("the test's premise: the open file is now session")
	}
	// What inspectLock does with such a file: it is no lock at all.
	l, err := inspectLockFile(f, d.file(NextFile), d.now())
	if err != nil || l != nil {
		t.Errorf("inspecting a committed lock file: %+v, %v; want no lock", l, err)
	}
}
