package storage_test

// Writers of one process: goroutines that save to the same session, through
// one Session or through several opened on the same directory or S3 prefix,
// wait for each other at the session's in-process gate instead of finding
// the lock held by their own process. Writers of other processes (stood for
// here by a lock taken through the backend, which does not pass the gate)
// still get a *LockedError.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// sharedOpener makes a new session at generation 0 and returns it with a
// function that opens the same session again, as another part of the
// process would: storage.Open of the directory, or a new store on the
// same S3 prefix.
type sharedOpener func(t *testing.T) (s *storage.Session, reopen func() (*storage.Session, error))

func openLocalShared(t *testing.T) (*storage.Session, func() (*storage.Session, error)) {
	t.Helper()
	s, dir := newSession(t)
	return s, func() (*storage.Session, error) { return storage.Open(dir) }
}

func openS3Shared(t *testing.T) (*storage.Session, func() (*storage.Session, error)) {
	t.Helper()
	st := s3test.NewStore(t, s3store.Options{})
	var r [6]byte
	_, _ = rand.Read(r[:])
	id := "concurrent-" + hex.EncodeToString(r[:])
	b, err := st.Backend(id)
	if err != nil {
		t.Fatal(err)
	}
	s, err := storage.Init(t.Context(), b)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	opts := s3test.Shared(t).StoreOptions(s3store.Options{})
	return s, func() (*storage.Session, error) {
		st2, err := s3store.Open(context.Background(), st.Root(), opts)
		if err != nil {
			return nil, err
		}
		if err := st2.CheckConditionalWrites(context.Background()); err != nil {
			return nil, err
		}
		b, err := st2.Backend(id)
		if err != nil {
			return nil, err
		}
		return storage.New(b), nil
	}
}

func TestConcurrentWritersLocal(t *testing.T) {
	runConcurrentWriters(t, openLocalShared, 8)
}

func TestConcurrentWritersS3(t *testing.T) {
	runConcurrentWriters(t, openS3Shared, 2)
}

func runConcurrentWriters(t *testing.T, open sharedOpener, saves int) {
	t.Run("SavesWait", func(t *testing.T) { testSavesWait(t, open, 16, saves, false) })
	t.Run("SavesWaitForSweep", func(t *testing.T) { testSavesWait(t, open, 16, saves, true) })
	t.Run("CancelledWait", func(t *testing.T) { testCancelledWait(t, open) })
	t.Run("BreakLockLetsWaitersIn", func(t *testing.T) { testBreakLockLetsWaitersIn(t, open) })
	t.Run("OtherProcess", func(t *testing.T) { testOtherProcessStillLocked(t, open) })
	t.Run("SweepAndRemove", func(t *testing.T) { testSweepAndRemoveInProcess(t, open) })
}

// appendTag is a read-modify-write: it commits the base's payload with tag
// appended, so that a lost update would lose a tag.
func appendTag(ctx context.Context, tx *storage.Tx, tag string) (*storage.Saved, error) {
	var prev string
	cp, err := tx.Load(ctx)
	switch {
	case errors.Is(err, storage.ErrNoCheckpoint):
	case err != nil:
		return nil, err
	default:
		b, err := io.ReadAll(cp)
		cp.Close()
		if err != nil {
			return nil, err
		}
		prev = string(b)
	}
	return tx.Commit(ctx, strings.NewReader(prev+tag+";"))
}

// Goroutines save at once — half through the one Session, half through a
// Session each of their own on the same location — with Save, Run and
// Begin/Commit, and, with sweep, while gc sweeps the session over and over:
// every save succeeds, each gets its own generation, and no
// read-modify-write loses an update.
func testSavesWait(t *testing.T, open sharedOpener, writers, saves int, sweep bool) {
	shared, reopen := open(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	var (
		mu   sync.Mutex
		gens []uint64
		tags []string // appended to the payload
		wg   sync.WaitGroup
	)
	for w := range writers {
		wg.Go(func() {
			s := shared
			if w%2 == 1 {
				var err error
				if s, err = reopen(); err != nil {
					t.Errorf("writer %d: open: %v", w, err)
					return
				}
			}
			for i := range saves {
				tag := fmt.Sprintf("w%02d-%02d", w, i)
				var saved *storage.Saved
				var err error
				appended := true
				switch (w + i) % 3 {
				case 0:
					saved, err = s.Run(ctx, func(ctx context.Context, tx *storage.Tx) error {
						_, err := appendTag(ctx, tx, tag)
						return err
					})
				case 1:
					var tx *storage.Tx
					if tx, err = s.Begin(ctx); err == nil {
						if saved, err = appendTag(ctx, tx, tag); err != nil {
							tx.Abort()
						}
					}
				default:
					appended = false
					saved, err = s.Save(ctx, nil, storage.KeepPayload(), storage.WithTitle(tag))
				}
				if err != nil {
					t.Errorf("writer %d, save %d: %v", w, i, err)
					return
				}
				mu.Lock()
				gens = append(gens, saved.Header.Generation)
				if appended {
					tags = append(tags, tag)
				}
				mu.Unlock()
			}
		})
	}
	// gc takes the session's lock too: the writers wait for it, and it
	// steps aside for them. Locally, the sweeps also probe the session's
	// temporary files, among them the lock file a writer is about to flock.
	sweeping := make(chan struct{})
	swept := make(chan int, 1)
	go func() {
		n := 0
		defer func() { swept <- n }()
		for sweep {
			select {
			case <-sweeping:
				return
			default:
			}
			if _, err := shared.Sweep(ctx, time.Now().Add(-time.Hour), false); err != nil {
				t.Errorf("Sweep: %v", err)
				return
			}
			n++
		}
	}()
	wg.Wait()
	close(sweeping)
	if n := <-swept; sweep {
		t.Logf("%d sweeps meanwhile", n)
	}
	if t.Failed() {
		return
	}

	total := writers * saves
	slices.Sort(gens)
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(gens, want) {
		t.Errorf("the saves reported generations %v, want 1..%d each once", gens, total)
	}
	st, err := shared.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.Generation != uint64(total) || st.Lock != nil {
		t.Errorf("Stat = generation %d, lock %+v; want generation %d, no lock", st.Header.Generation, st.Lock, total)
	}
	cp, got := mustLoad(t, shared, storage.Strict())
	if cp.Header.Generation != uint64(total) {
		t.Errorf("Load = generation %d, want %d", cp.Header.Generation, total)
	}
	gotTags := strings.Split(strings.TrimSuffix(got, ";"), ";")
	slices.Sort(gotTags)
	slices.Sort(tags)
	if !slices.Equal(gotTags, tags) {
		t.Errorf("the payload holds %d tags, want the %d appended, each once:\n got %v\nwant %v", len(gotTags), len(tags), gotTags, tags)
	}
}

// saveAsync starts a save of payload through s and returns where its error
// will come.
func saveAsync(ctx context.Context, s *storage.Session, payload string) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := s.Save(ctx, strings.NewReader(payload))
		done <- err
	}()
	return done
}

// wantWaiting checks that the save whose error comes on done is still
// waiting after a while.
func wantWaiting(t *testing.T, what string, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("%s returned %v while another writer of this process held the lock; want it to wait", what, err)
	case <-time.After(100 * time.Millisecond):
	}
}

// returned waits for the save whose error comes on done to return.
func returned(t *testing.T, what string, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s has not returned after 10s", what)
		return nil
	}
}

// A save waiting for another writer of this process gives up with ctx's
// error as soon as ctx is done, having changed nothing; one that is not
// cancelled goes ahead once the holder ends.
func testCancelledWait(t *testing.T, open sharedOpener) {
	s, reopen := open(t)
	other, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustSave(t, s, "base")
	tx, err := s.Begin(ctx, storage.WithTitle("holder"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()

	wctx, cancel := context.WithCancel(ctx)
	done := saveAsync(wctx, other, "cancelled")
	wantWaiting(t, "Save through another Session", done)
	start := time.Now()
	cancel()
	err = returned(t, "the cancelled Save", done)
	var le *storage.LockedError
	if !errors.Is(err, context.Canceled) || errors.As(err, &le) {
		t.Errorf("the cancelled Save = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("the cancelled Save took %v to return", d)
	}

	// The goroutine that holds the transaction, saving again, waits for
	// itself: its deadline ends the wait.
	dctx, dcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer dcancel()
	start = time.Now()
	_, err = s.Save(dctx, strings.NewReader("timed out"))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 50*time.Millisecond {
		t.Errorf("Save whose deadline passed while it waited = %v after %v, want context.DeadlineExceeded after 50ms", err, time.Since(start))
	}
	// The waits that gave up left the gate as it was: the holder commits,
	// and a waiter that is not cancelled gets in after it.
	done = saveAsync(ctx, other, "after the holder")
	wantWaiting(t, "Save behind the holder", done)
	saved, err := tx.Commit(ctx, strings.NewReader("holder's"))
	if err != nil {
		t.Fatalf("the holder's Commit: %v", err)
	}
	if saved.Header.Generation != 2 {
		t.Errorf("the holder committed generation %d, want 2", saved.Header.Generation)
	}
	if err := returned(t, "the waiting Save", done); err != nil {
		t.Fatalf("the Save that waited for the holder: %v", err)
	}
	wantLoad(t, s, 3, "after the holder")
	wantNoLock(t, s)
}

// Breaking the lock of a writer of this process lets the writers waiting
// behind it in at once; the broken writer's commit fails and changes
// nothing.
func testBreakLockLetsWaitersIn(t *testing.T, open sharedOpener) {
	s, reopen := open(t)
	other, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustSave(t, s, "base")
	tx, err := s.Begin(ctx, storage.WithCommand("stuck writer"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	done := saveAsync(ctx, other, "waiter")
	wantWaiting(t, "Save behind the stuck writer", done)
	broken, err := other.BreakLock(ctx, true)
	if err != nil {
		t.Fatalf("BreakLock(true): %v", err)
	}
	if broken == nil || broken.Owner == nil || broken.Owner.Command != "stuck writer" {
		t.Fatalf("BreakLock(true) broke %+v, want the stuck writer's lock", broken)
	}
	if err := returned(t, "the Save behind the broken writer", done); err != nil {
		t.Fatalf("the Save behind the broken writer: %v", err)
	}
	_, err = tx.Commit(ctx, strings.NewReader("stuck"))
	if le := lockedError(t, "the broken writer's Commit", err); !le.Lost {
		t.Errorf("the broken writer's Commit = %v, want a Lost *LockedError", le)
	}
	wantLoad(t, s, 2, "waiter")
	wantNoLock(t, s)
	mustSave(t, s, "after")
	wantLoad(t, s, 3, "after")
}

// A writer of another process is not waited for: a save fails at once with
// a live *LockedError naming it, and a Waiter waits. The other process is
// stood for by a lock taken through the backend, which no gate guards.
func testOtherProcessStillLocked(t *testing.T, open sharedOpener) {
	s, _ := open(t)
	ctx := t.Context()
	mustSave(t, s, "base")
	held, err := s.Backend().Lock(ctx, storage.NextFile, storage.CurrentOwner("another process", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release(context.Background())
	start := time.Now()
	_, err = s.Save(ctx, strings.NewReader("refused"))
	le := lockedError(t, "Save while another process holds the lock", err)
	if le.Stale || le.Lost || le.Owner == nil || le.Owner.Command != "another process" {
		t.Errorf("LockedError = %+v, want the other process's live lock", le)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the refused Save took %v: it waited", d)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		_ = held.Release(context.Background())
	}()
	w := &storage.Waiter{Max: 30 * time.Second}
	if err := w.Do(ctx, func() error { _, err := s.Save(ctx, strings.NewReader("waited")); return err }); err != nil {
		t.Fatalf("Waiter.Do: %v", err)
	}
	wantLoad(t, s, 2, "waited")
}

// gc and remove do not wait for a writer of this process: Sweep leaves its
// objects alone and Remove refuses with a live *LockedError naming this
// process, as for a writer of another process.
func testSweepAndRemoveInProcess(t *testing.T, open sharedOpener) {
	s, reopen := open(t)
	other, err := reopen()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	mustSave(t, s, "base")
	tx, err := s.Begin(ctx, storage.WithCommand("holder"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Abort()
	start := time.Now()
	if sw, err := other.Sweep(ctx, time.Now().Add(time.Hour), false); err != nil || len(sw) != 0 {
		t.Errorf("Sweep while this process saves = %v, %v; want nothing swept", sw, err)
	}
	le := lockedError(t, "Remove while this process saves", other.Remove(ctx, false))
	if le.Stale || le.Owner == nil || le.Owner.PID != os.Getpid() {
		t.Errorf("Remove's LockedError = %+v, want a live lock of pid %d", le, os.Getpid())
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Sweep and Remove took %v: they waited", d)
	}
	if _, err := tx.Commit(ctx, strings.NewReader("committed")); err != nil {
		t.Fatalf("Commit after Sweep and Remove stepped aside: %v", err)
	}
	wantLoad(t, s, 2, "committed")
	if err := other.Remove(ctx, false, storage.RemoveIfGeneration(2)); err != nil {
		t.Fatalf("Remove once the writer is done: %v", err)
	}
	if _, err := s.Stat(ctx); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Remove = %v, want ErrNotFound", err)
	}
}
