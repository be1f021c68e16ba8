package s3store_test

import (
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// waitStale polls b until its lock is stale, and fails t after a bound.
func waitStale(t *testing.T, b *s3store.Backend) *storage.Lock {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := b.InspectLock(t.Context(), storage.NextFile)
		if err != nil {
			t.Fatal(err)
		}
		if l == nil {
			t.Fatal("the lock went away")
		}
		if l.Stale {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("the lease never went stale: %+v", l)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// A writer holding the lease keeps others out, and renews the lease for as
// long as it holds it; Release deletes it.
func TestLiveLease(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{LeaseDuration: 3 * time.Second})
	b := newBackend(t, st)
	h := mustLock(t, b, "holder")
	check := func(when string) {
		t.Helper()
		_, err := b.Lock(t.Context(), storage.NextFile, testOwner("intruder"))
		le := lockedError(t, when+": Lock", err)
		if le.Stale || le.Lost || le.Session != b.ID() || le.Owner == nil || le.Owner.PID != os.Getpid() || le.Owner.Command != "holder" {
			t.Errorf("%s: LockedError = %+v, owner %+v; want a live lock held by this process", when, le, le.Owner)
		}
		if _, err := b.BreakLock(t.Context(), storage.NextFile, false); lockedError(t, when+": BreakLock", err).Stale {
			t.Errorf("%s: BreakLock judged a live lease stale", when)
		}
		if err := h.Check(t.Context()); err != nil {
			t.Errorf("%s: Check = %v", when, err)
		}
	}
	check("at once")
	// Past the lease's duration and grace: only renewal keeps it live.
	time.Sleep(3*time.Second + time.Second + 1500*time.Millisecond)
	check("after renewals")
	if err := h.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if l, err := b.InspectLock(t.Context(), storage.NextFile); l != nil || err != nil {
		t.Errorf("InspectLock after Release = %+v, %v", l, err)
	}
	if err := h.Release(t.Context()); err != nil {
		t.Errorf("a second Release: %v", err)
	}
	if err := h.Check(t.Context()); !lockedError(t, "Check after Release", err).Lost {
		t.Errorf("Check after Release = %v, want Lost", err)
	}
}

// A writer that stops renewing (paused past its lease) is judged stale;
// once another writer breaks the lease and takes the lock, the first one's
// Check and Commit fail Lost and its Release leaves the new lease alone.
func TestPausedWriterLosesItsLease(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	s3store.SetNoRenew(st)
	b := newBackend(t, st)
	paused := mustLock(t, b, "paused")
	l := waitStale(t, b)
	if l.Owner == nil || l.Owner.Command != "paused" || !strings.Contains(l.Reason, "expired") {
		t.Errorf("stale lock = %+v", l)
	}

	other := storeAt(t, st, s3store.Options{})
	ob, _ := other.Backend(b.ID())
	_, err := ob.Lock(t.Context(), storage.NextFile, testOwner("breaker"))
	if le := lockedError(t, "Lock over a stale lease", err); !le.Stale || le.Owner == nil {
		t.Fatalf("LockedError = %+v, want stale with its owner", le)
	}
	broken, err := ob.BreakLock(t.Context(), storage.NextFile, false)
	if err != nil || broken == nil || !broken.Stale {
		t.Fatalf("BreakLock = %+v, %v", broken, err)
	}
	h := mustLock(t, ob, "breaker")
	if err := ob.Commit(t.Context(), h, "", []byte("breaker's")); err != nil {
		t.Fatal(err)
	}

	if err := paused.Check(t.Context()); !lockedError(t, "the paused writer's Check", err).Lost {
		t.Errorf("Check = %v, want Lost", err)
	}
	err = b.Commit(t.Context(), paused, "", []byte("paused writer's"))
	if !lockedError(t, "the paused writer's Commit", err).Lost {
		t.Errorf("Commit = %v, want Lost", err)
	}
	if got := content(t, b, "session"); string(got) != "breaker's" {
		t.Errorf("session = %q", got)
	}
	if err := paused.Release(t.Context()); err != nil {
		t.Errorf("Release of the broken lease: %v", err)
	}
	if l, err := b.InspectLock(t.Context(), storage.NextFile); err != nil || l == nil || l.Owner.Command != "breaker" {
		t.Errorf("the breaker's lock after the paused writer's Release: %+v, %v", l, err)
	}
}

// switchClient fails every request while off is set, as a network cut
// would.
type switchClient struct {
	off atomic.Bool
	c   *http.Client
}

func (s *switchClient) Do(r *http.Request) (*http.Response, error) {
	if s.off.Load() {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	return s.c.Do(r)
}

// A writer cut off from the server for longer than its lease cannot know
// whether its lease was broken: Check reports it Lost.
func TestCheckExpiresLocally(t *testing.T) {
	t.Parallel()
	sc := &switchClient{c: &http.Client{}}
	st := s3test.NewStore(t, s3store.Options{HTTPClient: sc, MaxAttempts: 1})
	b := newBackend(t, st)
	h := mustLock(t, b, "cut off")
	sc.off.Store(true)
	time.Sleep(1200 * time.Millisecond) // past half the lease: Check tries to renew
	if err := h.Check(t.Context()); err != nil {
		t.Errorf("Check within the lease, server unreachable = %v, want nil", err)
	}
	time.Sleep(1200 * time.Millisecond) // past the lease
	err := h.Check(t.Context())
	if le := lockedError(t, "Check past the lease", err); !le.Lost || !strings.Contains(le.Reason, "not renewed") {
		t.Errorf("Check = %+v", le)
	}
	sc.off.Store(false)
}

// A forced break removes a live lease; its writer then fails Lost (see
// TestLostWriterFailsIfMatch for a writer that has not noticed yet). The
// break aborts the multipart uploads the writer left.
func TestBreakLockForce(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	h := mustLock(t, b, "holder")
	startUpload(t, st, b, "payload-x")
	// Initiated and the Date the break judges by have a resolution of one
	// second, and versitygw sends a Date up to a second old.
	time.Sleep(2200 * time.Millisecond)
	l, err := b.BreakLock(t.Context(), storage.NextFile, true)
	if err != nil || l == nil || l.Stale || l.Owner == nil || l.Owner.Command != "holder" {
		t.Fatalf("BreakLock(force) = %+v, %v; want the live lock", l, err)
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads left after the break: %v", ups)
	}
	if l, err := b.BreakLock(t.Context(), storage.NextFile, false); l != nil || err != nil {
		t.Errorf("BreakLock with no lock = %+v, %v; want nil, nil", l, err)
	}
	if l, err := b.InspectLock(t.Context(), storage.NextFile); l != nil || err != nil {
		t.Errorf("InspectLock with no lock = %+v, %v; want nil, nil", l, err)
	}
	// The writer learns of the break at its next renewal, a third of the
	// lease later; from then on it cannot commit.
	time.Sleep(time.Second)
	if err := h.Check(t.Context()); !lockedError(t, "Check after a forced break", err).Lost {
		t.Errorf("Check = %v, want Lost", err)
	}
	err = b.Commit(t.Context(), h, "", []byte("too late"))
	if !lockedError(t, "Commit after a forced break", err).Lost {
		t.Errorf("Commit = %v, want Lost", err)
	}
	if exists(t, st, b, "session") {
		t.Error("the broken writer's commit landed")
	}
}

// A session.next that ckpt did not write is a lock all the same, judged by
// its age.
func TestForeignLease(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	rawPut(t, st, b, "session.next", []byte("not json"))
	_, err := b.Lock(t.Context(), storage.NextFile, testOwner("w"))
	if le := lockedError(t, "Lock", err); le.Stale || !strings.Contains(le.Reason, "not a lease ckpt wrote") {
		t.Errorf("LockedError = %+v", le)
	}
	l := waitStale(t, b)
	if l.Owner != nil {
		t.Errorf("owner of a foreign lease = %+v", l.Owner)
	}
	if _, err := b.BreakLock(t.Context(), storage.NextFile, false); err != nil {
		t.Fatal(err)
	}
	h := mustLock(t, b, "w")
	if err := h.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if exists(t, st, b, "session.next") {
		t.Error("Release left the lease")
	}
}
