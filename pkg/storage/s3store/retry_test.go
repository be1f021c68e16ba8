package s3store_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// cutClient breaks off the body of the next n whole-object GETs of
// payload objects after a few bytes, as a dropped connection would.
type cutClient struct {
	mu sync.Mutex
	n  int
	c  *http.Client
}

type cutBody struct {
	body io.ReadCloser
	left int
}

func (b *cutBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	n, err := b.body.Read(p[:min(len(p), b.left)])
	b.left -= n
	return n, err
}

func (b *cutBody) Close() error { return b.body.Close() }

func (c *cutClient) Do(r *http.Request) (*http.Response, error) {
	resp, err := c.c.Do(r)
	if err != nil || r.Method != http.MethodGet || !strings.Contains(r.URL.Path, "/payload-") || r.Header.Get("Range") != "" {
		return resp, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n > 0 {
		c.n--
		resp.Body = &cutBody{body: resp.Body, left: 10}
	}
	return resp, nil
}

// A download that breaks off is tried again; one that keeps breaking off
// is an error wrapping ErrUnavailable, never a short object. The same in
// memory and spooled to a file.
func TestBrokenDownloadRetried(t *testing.T) {
	t.Parallel()
	cc := &cutClient{c: &http.Client{}}
	st := s3test.NewStore(t, s3store.Options{HTTPClient: cc})
	b := newBackend(t, st)
	for _, data := range [][]byte{[]byte("small payload"), big(3<<20, 'b')} {
		if err := b.Put(t.Context(), "payload-x", data); err != nil {
			t.Fatal(err)
		}
		cc.n = s3store.DownloadAttempts - 1
		if got := content(t, b, "payload-x"); !bytes.Equal(got, data) {
			t.Errorf("Open after %d broken transfers: %d bytes, want %d", s3store.DownloadAttempts-1, len(got), len(data))
		}
		cc.n = s3store.DownloadAttempts
		_, err := b.Open(t.Context(), "payload-x")
		t.Logf("message: %v", err)
		if !errors.Is(err, s3store.ErrUnavailable) || !strings.Contains(err.Error(), "broke off") {
			t.Errorf("Open after %d broken transfers: %v; want a transfer error", s3store.DownloadAttempts, err)
		}
		cc.n = 0
	}
}
