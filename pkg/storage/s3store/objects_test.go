package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

func TestBackendIDs(t *testing.T) {
	st, err := s3store.Open(t.Context(), "s3://bucket/prefix", s3store.Options{Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"", ".hidden", "../x", "a/b", "UPPER"} {
		if _, err := st.Backend(id); !errors.Is(err, s3store.ErrInvalidID) {
			t.Errorf("Backend(%q) = %v, want ErrInvalidID", id, err)
		}
	}
	b, err := st.Backend("nightly-abc")
	if err != nil || b.ID() != "nightly-abc" || b.Location() != "s3://bucket/prefix/nightly-abc" {
		t.Fatalf("Backend = %v (%v)", b, err)
	}
	for _, name := range []string{"", ".", "..", "a/b", "logs/x.log"} {
		if _, err := b.Create(t.Context(), name, strings.NewReader("x")); err == nil || errors.Is(err, fs.ErrExist) {
			t.Errorf("Create(%q) = %v, want an invalid name", name, err)
		}
	}
}

// ReadHead reads a range and says how large the whole object is.
func TestReadHead(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	if err := b.Check(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Check of a new session = %v, want ErrNotFound", err)
	}
	if _, _, err := b.ReadHead(t.Context(), "session", 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadHead of a missing object = %v", err)
	}
	// On S3 a session is its manifest: other objects make none.
	if err := b.Put(t.Context(), "session.1", []byte("0123456789abcdef")); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Check with a history object but no manifest = %v, want ErrNotFound", err)
	}
	if err := b.Put(t.Context(), "session", []byte("manifest")); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t.Context()); err != nil {
		t.Errorf("Check = %v", err)
	}
	if err := b.Put(t.Context(), "empty", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		n    int64
		want string
		size int64
	}{
		{"session.1", 4, "0123", 16},
		{"session.1", 100, "0123456789abcdef", 16},
		{"session.1", 0, "", 16},
		{"empty", 10, "", 0},
	} {
		data, info, err := b.ReadHead(t.Context(), tc.name, tc.n)
		if err != nil || string(data) != tc.want || info.Size != tc.size || info.Name != tc.name || info.Version == "" || info.Modified.IsZero() {
			t.Errorf("ReadHead(%s, %d) = %q, %+v, %v; want %q of %d bytes", tc.name, tc.n, data, info, err, tc.want, tc.size)
		}
	}
}

// Create stores an object whole, in one request or in parts, and refuses
// an existing name.
func TestCreate(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{PartSize: s3store.MinPartSize, Concurrency: 2})
	b := newBackend(t, st)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"payload-small", []byte("small")},
		{"payload-empty", nil},
		{"payload-one-part", big(s3store.MinPartSize, 'o')},
		{"payload-multipart", append(big(3*s3store.MinPartSize, 'm'), "tail"...)},
	} {
		n, err := b.Create(t.Context(), tc.name, bytes.NewReader(tc.data))
		if err != nil || n != int64(len(tc.data)) {
			t.Fatalf("Create(%s) = %d, %v", tc.name, n, err)
		}
		if got := content(t, b, tc.name); !bytes.Equal(got, tc.data) {
			t.Errorf("%s: read back %d bytes, want %d", tc.name, len(got), len(tc.data))
		}
		if _, err := b.Create(t.Context(), tc.name, bytes.NewReader(big(len(tc.data)+1, 'x'))); !errors.Is(err, fs.ErrExist) {
			t.Errorf("Create over %s = %v, want fs.ErrExist", tc.name, err)
		}
		if got := content(t, b, tc.name); !bytes.Equal(got, tc.data) {
			t.Errorf("%s changed under a refused Create", tc.name)
		}
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads left: %v", ups)
	}
	// A reader that fails: nothing is stored, no upload is left.
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(big(2*s3store.MinPartSize, 'f')), iotestErr{boom})
	if _, err := b.Create(t.Context(), "payload-failed", r); !errors.Is(err, boom) {
		t.Errorf("Create from a failing reader = %v", err)
	}
	if exists(t, st, b, "payload-failed") {
		t.Error("a failed Create stored an object")
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads left after a failed Create: %v", ups)
	}
}

type iotestErr struct{ err error }

func (r iotestErr) Read([]byte) (int, error) { return 0, r.err }

// completeClient meddles with CompleteMultipartUpload: with fake set it
// answers 200 without sending it, as a server that acknowledges a
// completion and does nothing; with abortFirst it aborts the upload just
// before sending it, as a breaker of this writer's lease does.
type completeClient struct {
	c          *http.Client
	st         *s3store.Store
	mu         sync.Mutex
	fake       bool
	abortFirst bool
	status     int // what the server answered
}

func (c *completeClient) Do(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || !r.URL.Query().Has("uploadId") {
		return c.c.Do(r)
	}
	c.mu.Lock()
	fake, abort := c.fake, c.abortFirst
	c.mu.Unlock()
	if fake {
		body := `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><ETag>"0123456789abcdef0123456789abcdef-2"</ETag></CompleteMultipartUploadResult>`
		return &http.Response{StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	}
	if abort {
		bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
		_, err := c.st.Client().AbortMultipartUpload(r.Context(), &s3.AbortMultipartUploadInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: aws.String(r.URL.Query().Get("uploadId")),
		})
		if err != nil {
			return nil, fmt.Errorf("test: abort before completing: %w", err)
		}
	}
	resp, err := c.c.Do(r)
	if err == nil {
		c.mu.Lock()
		c.status = resp.StatusCode
		c.mu.Unlock()
	}
	return resp, err
}

// A multipart Create checks what the server stored: a completion answered
// 200 that stored nothing, or the completion of an upload aborted under
// it, is an error, never a Create that returns nil for a missing object.
func TestCreateMultipartChecked(t *testing.T) {
	t.Parallel()
	cc := &completeClient{c: &http.Client{}}
	st := s3test.NewStore(t, s3store.Options{PartSize: s3store.MinPartSize, HTTPClient: cc, MaxAttempts: 1})
	cc.st = storeAt(t, st, s3store.Options{})
	b := newBackend(t, st)
	data := big(2*s3store.MinPartSize+1, 'c')

	cc.fake = true
	_, err := b.Create(t.Context(), "payload-fake", bytes.NewReader(data))
	t.Logf("a completion answered 200 that did nothing: %v", err)
	if err == nil || !strings.Contains(err.Error(), "stored nothing") {
		t.Errorf("Create = %v, want an error saying the server stored nothing", err)
	}
	if exists(t, st, b, "payload-fake") {
		t.Error("an object appeared")
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads left: %v", ups)
	}

	cc.fake, cc.abortFirst = false, true
	_, err = b.Create(t.Context(), "payload-aborted", bytes.NewReader(data))
	t.Logf("the completion of an aborted upload (the server answered %d): %v", cc.status, err)
	if err == nil {
		t.Error("Create of an upload aborted under it returned nil")
	}
	if exists(t, st, b, "payload-aborted") {
		if got := content(t, b, "payload-aborted"); !bytes.Equal(got, data) {
			t.Error("a torn object appeared")
		}
	}
}

// A Create whose response is lost, so that the SDK's retry finds the
// object there, recognises its own object.
func TestCreateLostResponse(t *testing.T) {
	t.Parallel()
	dc := &dropClient{c: &http.Client{}, rules: map[string]int{}}
	st := s3test.NewStore(t, s3store.Options{PartSize: s3store.MinPartSize, HTTPClient: dc, MaxAttempts: 3, MaxBackoff: 10 * time.Millisecond})
	b := newBackend(t, st)
	dc.drop("PUT payload-a?PutObject", 1)
	if n, err := b.Create(t.Context(), "payload-a", strings.NewReader("small")); err != nil || n != 5 {
		t.Errorf("Create with a lost response = %d, %v", n, err)
	}
	data := big(2*s3store.MinPartSize, 'l')
	dc.drop("POST payload-b?", 1)
	if _, err := b.Create(t.Context(), "payload-b", bytes.NewReader(data)); err != nil {
		t.Errorf("multipart Create with a lost response: %v", err)
	}
	for rule, n := range dc.rules {
		if n != 0 {
			t.Errorf("the response of %s was never dropped", rule)
		}
	}
	if got := content(t, b, "payload-b"); !bytes.Equal(got, data) {
		t.Error("payload-b is not what was sent")
	}
}

func TestCopy(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	small, large := []byte("format-1 checkpoint"), big(s3store.MinPartSize+3, 'k')
	if err := b.Put(t.Context(), "session", small); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(t.Context(), "session", "session.1"); err != nil {
		t.Fatal(err)
	}
	if got := content(t, b, "session.1"); !bytes.Equal(got, small) {
		t.Errorf("copy = %q", got)
	}
	if err := b.Copy(t.Context(), "missing", "session.2"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Copy of a missing object = %v", err)
	}
	s3store.SetCopyLimit(st, s3store.MinPartSize)
	if _, err := b.Create(t.Context(), "payload-large", bytes.NewReader(large)); err != nil {
		t.Fatal(err)
	}
	if err := b.Copy(t.Context(), "payload-large", "session.3"); err != nil {
		t.Fatalf("multipart copy: %v", err)
	}
	if got := content(t, b, "session.3"); !bytes.Equal(got, large) {
		t.Errorf("multipart copy: %d bytes, want %d", len(got), len(large))
	}
}

// List, Delete, logs, Destroy and the store's List.
func TestObjects(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{ListPageSize: 2})
	b := newBackend(t, st)
	names := []string{"payload-1", "session", "session.3", "session.4"}
	for _, n := range names {
		if err := b.Put(t.Context(), n, []byte(n)); err != nil {
			t.Fatal(err)
		}
	}
	w, err := b.CreateLog(t.Context(), "logs/build.log")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "build output\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h := mustLock(t, b, "w")
	startUpload(t, st, b, "payload-2")

	infos, err := b.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range infos {
		got = append(got, i.Name)
		if i.Version == "" || i.Modified.IsZero() || (i.Name != "session.next" && i.Size != int64(len(i.Name))) {
			t.Errorf("List: %+v", i)
		}
	}
	if want := append(slices.Clone(names), "session.next"); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v (logs excepted)", got, want)
	}
	if ids, err := st.ListSaved(t.Context()); err != nil || !ids[b.ID()].Locked {
		t.Errorf("Store.ListSaved = %v, %v; want %s, locked", ids, err, b.ID())
	}

	// Delete in batches: most of these names do not exist.
	del := []string{"session.3"}
	for i := range 1002 {
		del = append(del, fmt.Sprintf("session.%d", 1000+i))
	}
	if err := b.Delete(t.Context(), append(del, "session.4")...); err != nil {
		t.Fatal(err)
	}
	if exists(t, st, b, "session.3") || exists(t, st, b, "session.4") || !exists(t, st, b, "session") {
		t.Error("Delete deleted the wrong objects")
	}

	if err := b.Destroy(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Check(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Check after Destroy = %v", err)
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads left after Destroy: %v", ups)
	}
	if err := h.Release(t.Context()); err != nil {
		t.Errorf("Release after Destroy: %v", err)
	}
	if ids, err := st.ListSaved(t.Context()); err != nil || hasKey(ids, b.ID()) {
		t.Errorf("Store.ListSaved after Destroy = %v, %v", ids, err)
	}
}

func TestLogs(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	if _, err := b.OpenLog(t.Context(), "logs/build.log"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OpenLog of no log = %v", err)
	}
	if _, err := b.CreateLog(t.Context(), "../x"); err == nil {
		t.Error("CreateLog accepted an invalid name")
	}
	for _, out := range []string{"first\n", "second\n"} {
		w, err := b.CreateLog(t.Context(), "logs/build.log")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, out)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("a second Close: %v", err)
		}
		if _, err := w.Write([]byte("late")); err == nil {
			t.Error("Write after Close succeeded")
		}
		r, err := b.OpenLog(t.Context(), "logs/build.log")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(r)
		r.Close()
		if string(got) != out {
			t.Errorf("log = %q, want %q", got, out)
		}
	}
	// The sink's memory is bounded.
	w, _ := b.CreateLog(t.Context(), "logs/flood.log")
	chunk := big(1<<20, 'f')
	for range s3store.MaxLogSize>>20 + 2 {
		w.Write(chunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, _ := b.OpenLog(t.Context(), "logs/flood.log")
	got, _ := io.ReadAll(r)
	r.Close()
	if len(got) > s3store.MaxLogSize+200 || !strings.Contains(string(got[s3store.MaxLogSize:]), "2097152 more bytes of output left out") {
		t.Errorf("flooded log: %d bytes, ending %q", len(got), got[min(len(got), s3store.MaxLogSize):])
	}
}

// SweepTemp aborts the uploads of writers that are gone, and leaves those
// of a live writer alone.
func TestSweepTemp(t *testing.T) {
	t.Parallel()
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	startUpload(t, st, b, "payload-1")
	h := mustLock(t, b, "live writer")
	future := time.Now().Add(time.Hour)
	if swept, err := b.SweepTemp(t.Context(), future, false); err != nil || len(swept) != 0 {
		t.Errorf("SweepTemp under a live lease = %v, %v", swept, err)
	}
	if err := h.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if swept, err := b.SweepTemp(t.Context(), time.Now().Add(-time.Hour), false); err != nil || len(swept) != 0 {
		t.Errorf("SweepTemp with an old cutoff = %v, %v", swept, err)
	}
	swept, err := b.SweepTemp(t.Context(), future, true)
	if err != nil || len(swept) != 1 || !strings.HasPrefix(swept[0], b.Location()+"/payload-1?uploadId=") {
		t.Fatalf("SweepTemp dry run = %v, %v", swept, err)
	}
	if len(uploads(t, st, b)) != 1 {
		t.Fatal("a dry run aborted the upload")
	}
	if _, err := b.SweepTemp(context.Background(), future, false); err != nil {
		t.Fatal(err)
	}
	if ups := uploads(t, st, b); len(ups) != 0 {
		t.Errorf("uploads after SweepTemp: %v", ups)
	}
}

func hasKey(m map[string]s3store.Listed, k string) bool {
	_, ok := m[k]
	return ok
}
