package s3store

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// dropClient sends every request, but loses the response of the first
// request that each rule matches, as a connection reset would: the server
// applied the request, the client does not know it.
type dropClient struct {
	mu    sync.Mutex
	rules map[string]bool // "METHOD name?x-id" prefix -> already dropped
	c     *http.Client
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
	if dropped, ok := d.rules[op]; ok && !dropped && resp.StatusCode < 300 {
		d.rules[op] = true
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, nil
}

// A conditional write whose response is lost is retried by the SDK; the
// retry fails its condition, and the writer recognises its own write.
func TestLostResponsesRetried(t *testing.T) {
	dc := &dropClient{c: &http.Client{}, rules: map[string]bool{}}
	o := testOptions()
	o.HTTPClient = dc
	o.MaxBackoff = 10 * time.Millisecond
	st := newStore(t, o)
	s := newSession(t, st)
	mustSave(t, s, "1")
	for _, op := range []string{"PUT session.next?PutObject", "PUT session?PutObject", "DELETE session.next?DeleteObject"} {
		dc.rules[op] = false
	}
	mustSave(t, s, "2")
	for op, dropped := range dc.rules {
		if !dropped {
			t.Errorf("the response of %s was never dropped", op)
		}
	}
	wantLoad(t, s, 2, "2")
	if exists(t, s, LeaseObject) {
		t.Error("the lease is left behind")
	}

	// The same for a multipart checkpoint's CompleteMultipartUpload.
	dc.rules = map[string]bool{"POST session?": false}
	st.o.PartSize = MinPartSize
	mustSave(t, s, big(MinPartSize+1, 'm'))
	if !dc.rules["POST session?"] {
		t.Error("the response of CompleteMultipartUpload was never dropped")
	}
	wantLoad(t, s, 3, big(MinPartSize+1, 'm'))
}

// A multipart save whose lease is broken before it completes fails Lost,
// changes nothing and leaves no upload behind.
func TestMultipartLost(t *testing.T) {
	o := testOptions()
	o.PartSize = MinPartSize
	st := newStore(t, o)
	s := newSession(t, st)
	mustSave(t, s, "base")
	other := newStoreAt(t, st)
	var once sync.Once
	var breakerErr error = errors.New("the hook did not run")
	st.beforeFinal = func(string) {
		once.Do(func() {
			bs, err := other.OpenSession(t.Context(), s.id)
			if err == nil {
				_, err = bs.BreakLock(t.Context(), true)
			}
			if err == nil {
				_, err = bs.Save(t.Context(), strings.NewReader("breaker's"))
			}
			breakerErr = err
		})
	}
	_, err := s.Save(t.Context(), strings.NewReader(big(3*MinPartSize, 'l')))
	if breakerErr != nil {
		t.Fatalf("the breaker: %v", breakerErr)
	}
	if le := lockedError(t, "the lost multipart Save", err); !le.Lost {
		t.Errorf("LockedError = %+v, want Lost", le)
	}
	wantLoad(t, s, 2, "breaker's")
	if ups, err := s.uploads(t.Context(), time.Time{}); err != nil || len(ups) != 0 {
		t.Errorf("uploads left: %v, %v", ups, err)
	}
	if _, err := s.Save(t.Context(), strings.NewReader("after"), storage.IfGeneration(2)); err != nil {
		t.Errorf("a save after the lost one: %v", err)
	}
}

// cutClient breaks off the body of the first n GETs of the checkpoint
// after a few bytes, as a dropped connection would.
type cutClient struct {
	mu sync.Mutex
	n  int
	c  *http.Client
}

type cutBody struct {
	r    http.Response
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	n, err := b.r.Body.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

func (b *cutBody) Close() error { return b.r.Body.Close() }

func (c *cutClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.c.Do(r)
	if err != nil || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/session") || r.Header.Get("Range") != "" {
		return resp, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 {
		c.n--
		resp.Body = &cutBody{r: *resp, left: 10}
	}
	return resp, nil
}

// A download that breaks off is tried again, and is never taken for a
// damaged checkpoint, in memory or spooled to a file.
func TestBrokenDownloadRetried(t *testing.T) {
	cc := &cutClient{c: &http.Client{}}
	o := testOptions()
	o.HTTPClient = cc
	o.PartSize = MinPartSize
	st := newStore(t, o)
	s := newSession(t, st)
	for _, payload := range []string{"small", big(MinPartSize+100, 'b')} {
		mustSave(t, s, payload)
		cc.n = downloadAttempts - 1
		cp, got := mustLoad(t, s, storage.Strict())
		if got != payload || len(cp.Skipped) != 0 {
			t.Errorf("Load after %d broken transfers: %d bytes, skipped %v", downloadAttempts-1, len(got), cp.Skipped)
		}
		cc.n = downloadAttempts
		_, err := s.Load(t.Context())
		var te *transferError
		t.Logf("message: %v", err)
		if !errors.As(err, &te) || errors.As(err, new(*checkpoint.CorruptError)) {
			t.Errorf("Load after %d broken transfers: %v; want a transfer error, not a corrupt checkpoint", downloadAttempts, err)
		}
		cc.n = 0
	}
}
