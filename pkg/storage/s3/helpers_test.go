package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// newSession creates a session at generation 0 in st.
func newSession(t testing.TB, st *Store, opts ...storage.SaveOption) *Session {
	t.Helper()
	id := "sess-" + randomToken()[:12]
	s, err := st.Create(context.Background(), id, opts...)
	if err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	return s.(*Session)
}

func mustSave(t testing.TB, s storage.Session, payload string, opts ...storage.SaveOption) *storage.Saved {
	t.Helper()
	saved, err := s.Save(context.Background(), strings.NewReader(payload), opts...)
	if err != nil {
		t.Fatalf("Save(%.20q): %v", payload, err)
	}
	return saved
}

// mustLoad loads and reads the whole current checkpoint.
func mustLoad(t testing.TB, s storage.Session, opts ...storage.LoadOption) (*storage.Checkpoint, string) {
	t.Helper()
	cp, err := s.Load(context.Background(), opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer cp.Close()
	b, err := io.ReadAll(cp)
	if err != nil {
		t.Fatalf("reading the loaded checkpoint: %v", err)
	}
	if int64(len(b)) != cp.Size {
		t.Errorf("Load: read %d bytes, Size says %d", len(b), cp.Size)
	}
	return cp, string(b)
}

// wantLoad checks that the current checkpoint is generation gen with payload.
func wantLoad(t testing.TB, s storage.Session, gen uint64, payload string) {
	t.Helper()
	cp, got := mustLoad(t, s)
	if cp.Header.Generation != gen || got != payload {
		t.Errorf("Load = generation %d, %.40q; want generation %d, %.40q", cp.Header.Generation, got, gen, payload)
	}
}

func lockedError(t testing.TB, what string, err error) *storage.LockedError {
	t.Helper()
	var le *storage.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("%s: error = %v, want a *storage.LockedError", what, err)
	}
	return le
}

// getObject returns the bytes of object name of s.
func getObject(t testing.TB, s *Session, name string) []byte {
	t.Helper()
	out, err := s.st.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(name))})
	if err != nil {
		t.Fatalf("get %s: %v", name, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putObject writes object name of s, unconditionally.
func putObject(t testing.TB, s *Session, name string, data []byte) {
	t.Helper()
	_, err := s.st.client.PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: &s.st.bucket, Key: aws.String(s.key(name)), Body: bytes.NewReader(data),
	})
	if err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

// objectNames returns the names of the objects of s.
func objectNames(t testing.TB, s *Session) []string {
	t.Helper()
	objs, err := s.objects(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, s.name(o))
	}
	return names
}

func exists(t testing.TB, s *Session, name string) bool {
	t.Helper()
	_, err := s.st.client.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(name))})
	if err != nil && !isNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// big returns n bytes of a recognisable pattern.
func big(n int, c byte) string { return strings.Repeat(string(c), n) }
