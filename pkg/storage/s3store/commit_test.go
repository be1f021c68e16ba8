package s3store_test

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// dropClient sends every request, but loses the response of the first
// request that each rule matches, as a connection reset would: the server
// applied the request, the client does not know it. A rule is "METHOD
// name?x-id", name being the last element of the key.
type dropClient struct {
	mu    sync.Mutex
	rules map[string]int // rule -> how many responses are left to drop
	c     *http.Client
}

func (d *dropClient) drop(rule string, n int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.rules[rule] = n
}

func (d *dropClient) left(rule string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rules[rule]
}

func (d *dropClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := d.c.Do(r)
	if err != nil {
		return resp, err
	}
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	op := r.Method + " " + name + "?" + r.URL.Query().Get("x-id")
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.rules[op] > 0 && resp.StatusCode < 300 {
		d.rules[op]--
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, nil
}

func newDropStore(t *testing.T, maxAttempts int) (*s3store.Store, *dropClient) {
	dc := &dropClient{c: &http.Client{}, rules: map[string]int{}}
	st := s3test.NewStore(t, s3store.Options{HTTPClient: dc, MaxAttempts: maxAttempts, MaxBackoff: 10 * time.Millisecond})
	return st, dc
}

// A commit whose response is lost is retried by the SDK; the retry fails
// its condition, and Commit finds its own bytes in place: success. The
// same for the lease's create and delete.
func TestCommitLostResponseRetried(t *testing.T) {
	t.Parallel()
	st, dc := newDropStore(t, 3)
	b := newBackend(t, st)
	for _, rule := range []string{"PUT session.next?PutObject", "PUT session?PutObject", "DELETE session.next?DeleteObject"} {
		dc.drop(rule, 1)
	}
	h, err := b.Lock(t.Context(), storage.NextFile, testOwner("w"))
	if err != nil {
		t.Fatalf("Lock with a lost response: %v", err)
	}
	if err := b.Commit(t.Context(), h, "", []byte("first")); err != nil {
		t.Fatalf("Commit with a lost response: %v", err)
	}
	v1 := version(t, b, "session")
	dc.drop("PUT session?PutObject", 1)
	if err := b.Commit(t.Context(), h, v1, []byte("second")); err != nil {
		t.Fatalf("Commit over a base with a lost response: %v", err)
	}
	if err := h.Release(t.Context()); err != nil {
		t.Fatalf("Release with a lost response: %v", err)
	}
	for rule, n := range dc.rules {
		if n != 0 {
			t.Errorf("the response of %s was never dropped", rule)
		}
	}
	if got := content(t, b, "session"); string(got) != "second" {
		t.Errorf("session = %q", got)
	}
	if exists(t, st, b, "session.next") {
		t.Error("the lease is left behind")
	}
}

// When every attempt's response is lost, Commit reads "session" back to
// learn whether the write landed, rather than report a failure for a
// commit that happened.
func TestCommitEveryResponseLost(t *testing.T) {
	t.Parallel()
	st, dc := newDropStore(t, 1)
	b := newBackend(t, st)
	h := mustLock(t, b, "w")
	dc.drop("PUT session?PutObject", 1)
	if err := b.Commit(t.Context(), h, "", []byte("landed")); err != nil {
		t.Fatalf("Commit whose only response was lost: %v", err)
	}
	if dc.left("PUT session?PutObject") != 0 {
		t.Fatal("no response was dropped")
	}
	if got := content(t, b, "session"); string(got) != "landed" {
		t.Errorf("session = %q", got)
	}
}

// A commit on a base that changed while this writer still holds its lease
// is a conflict, and changes nothing.
func TestCommitConflict(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	h := mustLock(t, b, "w")
	if err := b.Commit(t.Context(), h, "", []byte("1")); err != nil {
		t.Fatal(err)
	}
	v1 := version(t, b, "session")
	if err := b.Commit(t.Context(), h, "", []byte("2")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Commit with no base over a manifest = %v, want ErrConflict", err)
	}
	rawPut(t, st, b, "session", []byte("changed behind its back"))
	err := b.Commit(t.Context(), h, v1, []byte("3"))
	if !errors.Is(err, storage.ErrConflict) || errors.As(err, new(*storage.LockedError)) {
		t.Errorf("Commit on a changed base = %v, want ErrConflict", err)
	}
	if got := content(t, b, "session"); string(got) != "changed behind its back" {
		t.Errorf("session = %q", got)
	}
	if err := b.Commit(t.Context(), h, version(t, b, "session"), []byte("4")); err != nil {
		t.Errorf("Commit on the current base: %v", err)
	}
	other := newBackend(t, st)
	if err := b.Commit(t.Context(), mustLock(t, other, "x"), "", []byte("x")); err == nil {
		t.Error("Commit with another session's lock succeeded")
	}
}

// A writer whose lease was broken, and whose base a breaker changed, fails
// Lost even though it passed its last check: the conditional write fails.
func TestLostWriterFailsIfMatch(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	h := mustLock(t, b, "lost")
	if err := b.Commit(t.Context(), h, "", []byte("base")); err != nil {
		t.Fatal(err)
	}
	base := version(t, b, "session")
	if _, err := b.BreakLock(t.Context(), storage.NextFile, true); err != nil {
		t.Fatal(err)
	}
	bh := mustLock(t, b, "breaker")
	if err := b.Commit(t.Context(), bh, base, []byte("breaker's")); err != nil {
		t.Fatal(err)
	}
	err := b.Commit(t.Context(), h, base, []byte("lost writer's"))
	if le := lockedError(t, "the lost writer's Commit", err); !le.Lost || le.Session != b.ID() {
		t.Errorf("LockedError = %+v, want Lost", le)
	}
	if got := content(t, b, "session"); string(got) != "breaker's" {
		t.Errorf("session = %q", got)
	}
}
