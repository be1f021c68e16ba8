package storage_test

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// newDir makes an empty session directory, mode 0700, in a fresh temporary
// repository and returns its path.
func newDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sess-test")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newSession returns a session at generation 0.
func newSession(t *testing.T, opts ...storage.SaveOption) *storage.Dir {
	t.Helper()
	d, err := storage.Init(t.Context(), newDir(t), opts...)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return d
}

func mustSave(t *testing.T, d *storage.Dir, payload string, opts ...storage.SaveOption) *storage.Saved {
	t.Helper()
	s, err := d.Save(t.Context(), strings.NewReader(payload), opts...)
	if err != nil {
		t.Fatalf("Save(%.20q): %v", payload, err)
	}
	return s
}

// mustLoad loads and reads the whole current checkpoint.
func mustLoad(t *testing.T, d *storage.Dir) (*storage.Checkpoint, string) {
	t.Helper()
	cp, err := d.Load(t.Context())
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
func wantLoad(t *testing.T, d *storage.Dir, gen uint64, payload string) {
	t.Helper()
	cp, got := mustLoad(t, d)
	if cp.Header.Generation != gen || got != payload {
		t.Errorf("Load = generation %d, %.40q; want generation %d, %.40q", cp.Header.Generation, got, gen, payload)
	}
}

func exists(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// wantNoNext checks that no writer's file is left: neither session.next nor
// a temporary file it was prepared under.
func wantNoNext(t *testing.T, d *storage.Dir) {
	t.Helper()
	des, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if de.Name() == storage.NextFile || strings.HasPrefix(de.Name(), storage.TempPrefix) {
			t.Errorf("%s is left behind", de.Name())
		}
	}
}

// lockedError returns err as a *LockedError, failing the test if it is not
// one.
func lockedError(t *testing.T, what string, err error) *storage.LockedError {
	t.Helper()
	var le *storage.LockedError
	if !errors.As(err, &le) {
		t.Fatalf("%s: error = %v, want a *storage.LockedError", what, err)
	}
	return le
}

// hookReader yields its chunks in turn and calls hook[i], if set, before it
// yields chunk i. A hook's error is returned in place of the chunk.
type hookReader struct {
	chunks []string
	hook   map[int]func() error
	i      int
	rest   string
}

func (r *hookReader) Read(p []byte) (int, error) {
	for r.rest == "" {
		if r.i == len(r.chunks) {
			return 0, io.EOF
		}
		if h := r.hook[r.i]; h != nil {
			if err := h(); err != nil {
				return 0, err
			}
		}
		r.rest = r.chunks[r.i]
		r.i++
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// big returns n bytes of a recognisable pattern: large enough to go past every
// buffer between Save and the file.
func big(n int, c byte) string { return strings.Repeat(string(c), n) }
