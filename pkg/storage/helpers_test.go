package storage_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// newDir makes an empty session directory, mode 0700, in a fresh temporary
// repository and returns its path.
func newDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sess-test")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newLocal returns the local backend of a new, empty session directory.
func newLocal(t testing.TB) *storage.Dir {
	t.Helper()
	d, err := storage.OpenDir(newDir(t))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newSession returns a local session at generation 0, and its directory.
func newSession(t testing.TB, opts ...storage.SaveOption) (*storage.Session, string) {
	t.Helper()
	d := newLocal(t)
	s, err := storage.Init(context.Background(), d, opts...)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return s, d.Path()
}

func mustSave(t testing.TB, s *storage.Session, payload string, opts ...storage.SaveOption) *storage.Saved {
	t.Helper()
	saved, err := s.Save(context.Background(), strings.NewReader(payload), opts...)
	if err != nil {
		t.Fatalf("Save(%.20q): %v", payload, err)
	}
	return saved
}

// mustLoad loads and reads the whole checkpoint that opts select.
func mustLoad(t testing.TB, s *storage.Session, opts ...storage.LoadOption) (*storage.Checkpoint, string) {
	t.Helper()
	cp, err := s.Load(context.Background(), opts...)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, err := readAllClose(cp)
	if err != nil {
		t.Fatalf("reading the loaded checkpoint: %v", err)
	}
	if int64(len(got)) != cp.Size {
		t.Errorf("Load: read %d bytes, Size says %d", len(got), cp.Size)
	}
	return cp, got
}

// wantLoad checks that the current checkpoint is generation gen with
// payload, intact (a strict load).
func wantLoad(t testing.TB, s *storage.Session, gen uint64, payload string) {
	t.Helper()
	cp, got := mustLoad(t, s, storage.Strict())
	if cp.Header.Generation != gen || got != payload {
		t.Errorf("Load = generation %d, %.40q; want generation %d, %.40q", cp.Header.Generation, got, gen, payload)
	}
}

func readAllClose(cp *storage.Checkpoint) (string, error) {
	defer cp.Close()
	b, err := io.ReadAll(cp)
	return string(b), err
}

func exists(t testing.TB, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err == nil
}

// wantNoNext checks that no writer's file is left in the session directory
// dir: neither session.next nor a temporary file.
func wantNoNext(t testing.TB, dir string) {
	t.Helper()
	des, err := os.ReadDir(dir)
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
func lockedError(t testing.TB, what string, err error) *storage.LockedError {
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

// runStep runs one attempt of step name that writes text to its log and
// passes; it fails the test unless the step was to run.
func runStep(t testing.TB, s *storage.Session, name string, o storage.StepOptions, text string) checkpoint.Attempt {
	t.Helper()
	c, err := s.StartStep(t.Context(), name, o)
	if err != nil {
		t.Fatalf("StartStep(%q): %v", name, err)
	}
	if c.Action != storage.StepRun {
		t.Fatalf("StartStep(%q): action %d, want StepRun", name, c.Action)
	}
	w, err := c.OpenLog(t.Context(), 0)
	if err != nil {
		t.Fatalf("OpenLog: %v", err)
	}
	if _, err := io.WriteString(w, text); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	end, err := c.End(t.Context(), checkpoint.StepPassed, 0)
	if err != nil {
		t.Fatalf("End: %v", err)
	}
	return end
}
