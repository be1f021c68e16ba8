package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

func randomID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sess-" + hex.EncodeToString(b[:])
}

// newBackend returns the backend of a new session id in st; nothing is
// written.
func newBackend(t testing.TB, st *s3store.Store) *s3store.Backend {
	t.Helper()
	b, err := st.Backend(randomID())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storeAt returns a second store on st's prefix, with its own client and
// hooks, as another process would have.
func storeAt(t testing.TB, st *s3store.Store, o s3store.Options) *s3store.Store {
	t.Helper()
	other, err := s3store.Open(t.Context(), st.Root(), s3test.Shared(t).StoreOptions(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := other.CheckConditionalWrites(t.Context()); err != nil {
		t.Fatal(err)
	}
	return other
}

func testOwner(command string) *checkpoint.Owner {
	return &checkpoint.Owner{PID: os.Getpid(), Host: "test-host", Command: command, Started: time.Now().UTC()}
}

func mustLock(t testing.TB, b *s3store.Backend, command string) storage.Held {
	t.Helper()
	h, err := b.Lock(t.Context(), storage.NextFile, testOwner(command))
	if err != nil {
		t.Fatalf("Lock: %v", err)
	}
	t.Cleanup(func() { h.Release(context.Background()) })
	return h
}

func lockedError(t testing.TB, what string, err error) *storage.LockedError {
	t.Helper()
	var le *storage.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("%s: error = %v, want a *storage.LockedError", what, err)
	}
	return le
}

// version returns the Version of object name, "" if there is none.
func version(t testing.TB, b *s3store.Backend, name string) string {
	t.Helper()
	_, info, err := b.ReadHead(t.Context(), name, 1)
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return info.Version
}

// content returns the bytes of object name of b, read with Open.
func content(t testing.TB, b *s3store.Backend, name string) []byte {
	t.Helper()
	o, err := b.Open(t.Context(), name)
	if err != nil {
		t.Fatalf("Open(%s): %v", name, err)
	}
	defer o.Close()
	data, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// rawPut writes object name of b behind the backend's back.
func rawPut(t testing.TB, st *s3store.Store, b *s3store.Backend, name string, data []byte) {
	t.Helper()
	_, err := st.Client().PutObject(t.Context(), &s3.PutObjectInput{
		Bucket: aws.String(st.Bucket()), Key: aws.String(s3store.Key(b, name)), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func exists(t testing.TB, st *s3store.Store, b *s3store.Backend, name string) bool {
	t.Helper()
	_, err := st.Client().HeadObject(t.Context(), &s3.HeadObjectInput{Bucket: aws.String(st.Bucket()), Key: aws.String(s3store.Key(b, name))})
	return err == nil
}

// uploads returns the keys of the unfinished multipart uploads of b.
func uploads(t testing.TB, st *s3store.Store, b *s3store.Backend) []string {
	t.Helper()
	out, err := st.Client().ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{
		Bucket: aws.String(st.Bucket()), Prefix: aws.String(s3store.Key(b, "")),
	})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, u := range out.Uploads {
		keys = append(keys, aws.ToString(u.Key))
	}
	return keys
}

// startUpload starts a multipart upload of object name of b, as a writer
// that dies would leave it.
func startUpload(t testing.TB, st *s3store.Store, b *s3store.Backend, name string) {
	t.Helper()
	_, err := st.Client().CreateMultipartUpload(t.Context(), &s3.CreateMultipartUploadInput{
		Bucket: aws.String(st.Bucket()), Key: aws.String(s3store.Key(b, name)),
	})
	if err != nil {
		t.Fatal(err)
	}
}

// big returns n bytes of a recognisable pattern.
func big(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }

// patternReader generates n bytes without holding them.
func patternReader(n int64) io.Reader { return io.LimitReader(&pattern{}, n) }

type pattern struct{ i byte }

func (p *pattern) Read(b []byte) (int, error) {
	for k := range b {
		b[k] = 'a' + p.i%26
		p.i++
	}
	return len(b), nil
}
