package storage_test

import (
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// gateReader blocks its first Read until gate is closed, then returns err
// (or its data).
type gateReader struct {
	gate    chan struct{}
	started chan struct{}
	err     error
	r       io.Reader
}

func (g *gateReader) Read(p []byte) (int, error) {
	select {
	case <-g.started:
	default:
		close(g.started)
	}
	<-g.gate
	if g.err != nil {
		return 0, g.err
	}
	return g.r.Read(p)
}

// Writer A's lock is broken by force while it saves; B takes the lock and
// saves on the same base, so both write the history manifest session.1.
// A's payload then fails and A aborts. On S3, A's lease Check sends no
// request while the lease is young, so A cannot tell that its lock is
// gone: Abort must not delete the history manifest, which B's commit names.
func TestS3AbortKeepsBreakersHistory(t *testing.T) {
	ctx := t.Context()
	// The default lease (30 s): the test harness's 2 s lease renews every
	// 0.7 s and so notices the break before Abort runs.
	st := s3test.NewStore(t, s3store.Options{LeaseDuration: s3store.DefaultLeaseDuration})
	b, err := st.Backend("review-abort")
	if err != nil {
		t.Fatal(err)
	}
	s, err := storage.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	mustSave(t, s, "one")

	txA, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ra := &gateReader{gate: make(chan struct{}), started: make(chan struct{}), err: errors.New("producer died")}
	aDone := make(chan error, 1)
	go func() { _, err := txA.Commit(ctx, ra); aDone <- err }()
	<-ra.started
	for { // A's history manifest is written alongside its payload
		if _, _, err := b.ReadHead(ctx, "session.1", 1); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := s.BreakLock(ctx, true); err != nil {
		t.Fatal(err)
	}
	txB, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rb := &gateReader{gate: make(chan struct{}), started: make(chan struct{}), r: strings.NewReader("two")}
	bDone := make(chan error, 1)
	go func() { _, err := txB.Commit(ctx, rb); bDone <- err }()
	<-rb.started
	time.Sleep(time.Second) // B's Put of session.1 lands

	close(ra.gate)
	t.Logf("A: %v", <-aDone)
	close(rb.gate)
	if err := <-bDone; err != nil {
		t.Fatalf("B's save: %v", err)
	}
	wantLoad(t, s, 2, "two")
	cp, err := s.Load(ctx, storage.AtGeneration(1))
	if err != nil {
		t.Fatalf("generation 1, which B's manifest keeps, cannot be loaded: %v", err)
	}
	if got, _ := readAllClose(cp); got != "one" {
		t.Errorf("generation 1 = %q", got)
	}
}
