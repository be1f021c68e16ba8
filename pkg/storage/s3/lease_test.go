package s3store

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// waitStale polls s until its lock is stale, and fails t after a bound.
func waitStale(t *testing.T, s *Session) *storage.Lock {
	t.Helper()
	deadline := time.Now().Add(4 * (s.st.o.LeaseDuration + s.st.o.StaleGrace))
	for {
		st, err := s.Stat(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Lock == nil {
			t.Fatal("the lock went away")
		}
		if st.Lock.Stale {
			return st.Lock
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease never went stale: %+v", st.Lock)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A writer holding the lease keeps others out, and renews the lease for as
// long as it holds it.
func TestLiveLease(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.LeaseDuration = 3 * time.Second // renewals a second apart: room for a loaded machine
	st := newStore(t, o)
	s := newSession(t, st)
	tx, err := s.Begin(t.Context(), storage.WithCommand("holder"))
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		_, err := s.Save(t.Context(), strings.NewReader("intruder"))
		le := lockedError(t, when+": Save", err)
		if le.Stale || le.Lost || le.Owner == nil || le.Owner.PID != os.Getpid() || le.Owner.Command != "holder" {
			t.Errorf("%s: LockedError = %+v, owner %+v; want a live lock held by this process", when, le, le.Owner)
		}
		if _, err := s.BreakLock(t.Context(), false); lockedError(t, when+": BreakLock", err).Stale {
			t.Errorf("%s: BreakLock judged a live lease stale", when)
		}
		if err := s.Remove(t.Context(), false); lockedError(t, when+": Remove", err).Stale {
			t.Errorf("%s: Remove judged a live lease stale", when)
		}
	}
	check("at once")
	// Past the lease's duration and grace: only renewal keeps it live.
	time.Sleep(st.o.LeaseDuration + st.o.StaleGrace + 1500*time.Millisecond)
	check("after renewals")
	stat, err := s.Stat(t.Context())
	if err != nil || stat.Lock == nil || stat.Lock.Stale {
		t.Fatalf("Stat while locked = %+v, %v", stat, err)
	}
	if _, err := tx.Commit(t.Context(), strings.NewReader("holder's")); err != nil {
		t.Fatal(err)
	}
	wantLoad(t, s, 1, "holder's")
	if exists(t, s, LeaseObject) {
		t.Error("Commit left the lease behind")
	}
}

// A writer that stops renewing loses its lease: the lease is reported
// stale, can be broken, and the writer cannot overwrite what the breaker
// saved.
func TestPausedWriterCannotOverwrite(t *testing.T) {
	t.Parallel()
	st := newStore(t, testOptions())
	st.noRenew = true // the writer is paused past its lease: it never renews
	s := newSession(t, st)
	mustSave(t, s, "base")
	paused, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l := waitStale(t, s)
	if l.Owner == nil || l.Owner.PID != os.Getpid() || !strings.Contains(l.Reason, "expired") {
		t.Errorf("stale lock = %+v", l)
	}

	other := newStoreAt(t, st) // another process, which renews
	bs, err := other.OpenSession(t.Context(), s.id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bs.Save(t.Context(), strings.NewReader("breaker's"))
	if le := lockedError(t, "Save over a stale lease", err); !le.Stale || le.Owner == nil {
		t.Fatalf("LockedError = %+v, want stale with its owner", le)
	}
	probs, err := bs.Verify(t.Context())
	if err != nil || !slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind == storage.ProblemStaleLock }) {
		t.Errorf("Verify = %+v, %v; want a stale lock", probs, err)
	}
	w := &storage.Waiter{Max: time.Second, BreakStale: func(ctx context.Context, _ *storage.LockedError) error {
		_, err := bs.BreakLock(ctx, false)
		return err
	}}
	var saved *storage.Saved
	err = w.Do(t.Context(), func() (err error) {
		saved, err = bs.Save(t.Context(), strings.NewReader("breaker's"))
		return err
	})
	if err != nil || saved.Header.Generation != 2 {
		t.Fatalf("Save after breaking the stale lease = %+v, %v", saved, err)
	}

	_, err = paused.Commit(t.Context(), strings.NewReader("paused writer's"))
	if le := lockedError(t, "the paused writer's Commit", err); !le.Lost {
		t.Errorf("LockedError = %+v, want Lost", le)
	}
	wantLoad(t, s, 2, "breaker's")
	if exists(t, s, LeaseObject) {
		t.Error("a lease is left behind")
	}
}

// newStoreAt returns a second Store on st's prefix, with its own client, as
// another process would have.
func newStoreAt(t testing.TB, st *Store) *Store {
	t.Helper()
	o := st.o
	other, err := Open(context.Background(), st.Root(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CheckConditionalWrites(context.Background()); err != nil {
		t.Fatal(err)
	}
	return other
}

// Even a writer that passed its last lease check cannot overwrite the
// checkpoint of a writer that broke its lease after that check: the final
// write's If-Match fails.
func TestLostWriterFailsIfMatch(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "base")
	other := newStoreAt(t, st)
	var once sync.Once
	var breakerErr error
	st.beforeFinal = func(string) {
		once.Do(func() {
			bs, err := other.OpenSession(context.Background(), s.id)
			if err == nil {
				_, err = bs.BreakLock(context.Background(), true)
			}
			if err == nil {
				_, err = bs.Save(context.Background(), strings.NewReader("breaker's"))
			}
			breakerErr = err
		})
	}
	_, err := s.Save(t.Context(), strings.NewReader("lost writer's"))
	if breakerErr != nil {
		t.Fatalf("the breaker: %v", breakerErr)
	}
	if le := lockedError(t, "the lost writer's Save", err); !le.Lost {
		t.Errorf("LockedError = %+v, want Lost", le)
	}
	wantLoad(t, s, 2, "breaker's")
	gens, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range gens {
		if g.Err != nil {
			t.Errorf("generation %d damaged: %v", g.Generation, g.Err)
		}
	}
}

// A forced break of a live lease makes its writer fail Lost at commit, and
// changes nothing it wrote.
func TestBreakLockForce(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "base")
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.BreakLock(t.Context(), true)
	if err != nil || l == nil || l.Stale {
		t.Fatalf("BreakLock(force) = %+v, %v; want the live lock", l, err)
	}
	if l, err := s.BreakLock(t.Context(), false); l != nil || err != nil {
		t.Errorf("BreakLock with no lock = %+v, %v; want nil, nil", l, err)
	}
	_, err = tx.Commit(t.Context(), strings.NewReader("too late"))
	if le := lockedError(t, "Commit after a forced break", err); !le.Lost {
		t.Errorf("LockedError = %+v, want Lost", le)
	}
	wantLoad(t, s, 1, "base")
	if gens, _ := s.historyGenerations(t.Context()); len(gens) != 0 {
		t.Errorf("the lost writer kept history: %v", gens)
	}
}

func TestTransactions(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "1")

	tx, err := s.Begin(t.Context(), storage.IfGeneration(1))
	if err != nil {
		t.Fatal(err)
	}
	if tx.Base().Generation != 1 || tx.Next().Generation != 2 {
		t.Errorf("Base, Next = %d, %d", tx.Base().Generation, tx.Next().Generation)
	}
	cp, err := tx.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(cp)
	cp.Close()
	if string(b) != "1" {
		t.Errorf("Tx.Load = %q", b)
	}
	if err := tx.Abort(); err != nil {
		t.Fatal(err)
	}
	if exists(t, s, LeaseObject) {
		t.Error("Abort left the lease")
	}
	saved, err := s.Run(t.Context(), func(ctx context.Context, tx storage.Tx) error {
		_, err := tx.Commit(ctx, strings.NewReader("2"))
		return err
	})
	if err != nil || saved.Header.Generation != 2 {
		t.Fatalf("Run = %+v, %v", saved, err)
	}
	boom := errors.New("boom")
	if _, err := s.Run(t.Context(), func(context.Context, storage.Tx) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("Run with a failing fn = %v", err)
	}
	tx, unlock, err := s.Lock(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(t.Context(), strings.NewReader("3")); err != nil {
		t.Fatal(err)
	}
	if err := unlock(); err != nil {
		t.Errorf("unlock after Commit: %v", err)
	}
	wantLoad(t, s, 3, "3")
	// A cancelled commit saves nothing and releases the lock.
	ctx, cancel := context.WithCancel(t.Context())
	tx, err = s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := tx.Commit(ctx, strings.NewReader("4")); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Commit = %v", err)
	}
	wantLoad(t, s, 3, "3")
	if exists(t, s, LeaseObject) {
		t.Error("a cancelled Commit left the lease")
	}
}

func TestRemove(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "1")
	mustSave(t, s, "2")
	w, err := s.OpenLog("build", 0)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "log")
	w.Close()
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Remove(t.Context(), false); lockedError(t, "Remove of a locked session", err).Stale {
		t.Error("the live lock was judged stale")
	}
	if err := s.Remove(t.Context(), true); err != nil {
		t.Fatalf("Remove(force): %v", err)
	}
	if _, err := tx.Commit(t.Context(), strings.NewReader("3")); !errors.As(err, new(*storage.LockedError)) {
		t.Errorf("Commit into a removed session = %v, want a LockedError", err)
	}
	if names := objectNames(t, s); len(names) != 0 {
		t.Errorf("objects left: %v", names)
	}
	if _, err := st.Open(t.Context(), s.id); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open after Remove = %v", err)
	}
	if ids, err := st.List(t.Context()); err != nil || len(ids) != 0 {
		t.Errorf("List after Remove = %v, %v", ids, err)
	}
	if err := s.Remove(t.Context(), false); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Remove = %v", err)
	}
}

func TestSweepAndVerifyOrphans(t *testing.T) {
	t.Parallel()
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "1")
	putObject(t, s, "junk", []byte("x"))
	mpu, err := st.client.CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{Bucket: &st.bucket, Key: aws.String(s.key(CheckpointObject))})
	if err != nil {
		t.Fatal(err)
	}
	_ = mpu
	probs, err := s.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Kind != storage.ProblemOrphan || !strings.HasSuffix(probs[0].Path, "/junk") {
		t.Errorf("Verify = %+v; want the junk object (the upload is younger than a lease)", probs)
	}

	st.noRenew = true
	if _, err := s.Begin(t.Context()); err != nil { // a writer that dies holding the lease
		t.Fatal(err)
	}
	waitStale(t, s)
	future := time.Now().Add(time.Hour)
	swept, err := s.Sweep(t.Context(), future, true)
	if err != nil || len(swept) != 2 {
		t.Fatalf("Sweep dry run = %v, %v; want the lease and the upload", swept, err)
	}
	if !exists(t, s, LeaseObject) {
		t.Fatal("a dry run removed the lease")
	}
	if _, err := s.Sweep(t.Context(), future, false); err != nil {
		t.Fatal(err)
	}
	if exists(t, s, LeaseObject) {
		t.Error("Sweep left the stale lease")
	}
	if ups, err := s.uploads(t.Context(), time.Time{}); err != nil || len(ups) != 0 {
		t.Errorf("uploads after Sweep = %v, %v", ups, err)
	}
	wantLoad(t, s, 1, "1")
}

func TestLogs(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	if _, err := s.ReadLog("build"); !errors.Is(err, storage.ErrNoLog) {
		t.Errorf("ReadLog of no log = %v", err)
	}
	if _, err := s.OpenLog("../x", 0); err == nil {
		t.Error("OpenLog accepted an invalid name")
	}
	w, err := s.OpenLog("build", 100)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, strings.Repeat("a", 75))
	io.WriteString(w, strings.Repeat("b", 50))
	io.WriteString(w, strings.Repeat("c", 25))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := s.ReadLog("build")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	want := strings.Repeat("a", 75) + "\n[ckpt: 50 bytes of output left out here; the log keeps its first and last bytes]\n" + strings.Repeat("c", 25)
	if string(b) != want {
		t.Errorf("log = %q\nwant %q", b, want)
	}
	if probs, err := s.Verify(t.Context()); err != nil || len(probs) != 0 {
		t.Errorf("Verify with a log = %+v, %v", probs, err)
	}
}
