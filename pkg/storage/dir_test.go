package storage_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// What only the local backend does: file modes, symbolic links and FIFOs
// planted in the session directory, a session directory that is not one.
// Everything else is in the conformance suite.

// Under umask 0 the modes come from ckpt alone; under 022 (the usual one)
// they must not be widened either.
func TestPermissions(t *testing.T) {
	for _, mask := range []int{0o022, 0} {
		t.Run(fmt.Sprintf("umask=%03o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)
			s, dir := newSession(t, storage.WithTitle("first"))
			wantPerms(t, dir)
			mustSave(t, s, "one")
			mustSave(t, s, big(300<<10, '2'))
			if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithTitle("x")); err != nil {
				t.Fatal(err)
			}
			runStep(t, s, "build", storage.StepOptions{}, "log\n")
			runStep(t, s, "TestGo/sub_case#01", storage.StepOptions{}, "log\n")
			wantPerms(t, dir)
			wantNoNext(t, dir)
			if probs, err := s.Verify(t.Context()); err != nil || len(probs) != 0 {
				t.Errorf("Verify = %+v, %v", probs, err)
			}
		})
	}
}

// wantPerms checks the modes of the session directory and of everything in
// it: directories 0700, files 0600.
func wantPerms(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if de.IsDir() {
			want = fs.ModeDir | 0o700
		}
		if fi.Mode() != want {
			t.Errorf("mode of %s = %v, want %v", p, fi.Mode(), want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A session directory whose creation did not complete has no manifest.
func TestLoadNoManifest(t *testing.T) {
	s, err := storage.Open(newDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if cp, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) || cp != nil {
		t.Errorf("Load = %v, %v; want nil, ErrNoCheckpoint", cp, err)
	}
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Header != nil || st.Size != 0 || st.Lock != nil {
		t.Errorf("Stat = %+v; want no header, size 0, no lock", st)
	}
	// The first save works on it.
	mustSave(t, s, "first")
	wantLoad(t, s, 1, "first")
}

func TestOpen(t *testing.T) {
	tests := []struct {
		name    string
		path    func(t *testing.T) string
		wantErr error // nil: any error
	}{
		{
			name:    "missing directory",
			path:    func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") },
			wantErr: storage.ErrNotFound,
		},
		{
			name: "symlink to a session directory",
			path: func(t *testing.T) string {
				_, target := newSession(t)
				link := filepath.Join(filepath.Dir(target), "link")
				if err := os.Symlink(target, link); err != nil {
					t.Fatal(err)
				}
				return link
			},
			wantErr: storage.ErrSymlink,
		},
		{
			name: "regular file",
			path: func(t *testing.T) string {
				p := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(p, nil, 0o600); err != nil {
					t.Fatal(err)
				}
				return p
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := storage.Open(tt.path(t))
			if err == nil || d != nil {
				t.Fatalf("Open = %v, %v; want an error", d, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Open: error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && (errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrSymlink)) {
				t.Errorf("Open: error = %v, want neither ErrNotFound nor ErrSymlink", err)
			}
		})
	}

	t.Run("existing directory", func(t *testing.T) {
		dir := newDir(t)
		d, err := storage.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d.ID() != filepath.Base(dir) || d.Location() != dir {
			t.Errorf("ID, Location = %q, %q; want %q, %q", d.ID(), d.Location(), filepath.Base(dir), dir)
		}
	})
}

// A symbolic link planted at session is never followed: not to read it, not
// to build on it, not to write through it.
func TestCheckpointSymlink(t *testing.T) {
	t.Run("to another checkpoint", func(t *testing.T) {
		other, otherDir := newSession(t)
		mustSave(t, other, "someone else's secret")
		target := filepath.Join(otherDir, storage.CheckpointFile)
		before, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}

		d, dir := newSession(t)
		cpPath := filepath.Join(dir, storage.CheckpointFile)
		if err := os.Remove(cpPath); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, cpPath); err != nil {
			t.Fatal(err)
		}

		cp, err := d.Load(t.Context())
		if !errors.Is(err, storage.ErrSymlink) || cp != nil {
			t.Errorf("Load = %v, %v; want nil, ErrSymlink", cp, err)
		}
		if _, err := d.Stat(t.Context()); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Stat: error = %v, want ErrSymlink", err)
		}
		if _, err := d.Save(t.Context(), strings.NewReader("new")); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Save: error = %v, want ErrSymlink", err)
		}
		wantNoNext(t, dir)
		after, err := os.ReadFile(target)
		if err != nil || string(after) != string(before) {
			t.Errorf("the link's target changed (err %v)", err)
		}
		if fi, err := os.Lstat(cpPath); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Errorf("the planted link was replaced or removed: %v, %v", fi, err)
		}
	})

	// Opening a FIFO for reading blocks until a writer comes: if Load
	// followed the link it would hang instead of failing at once.
	t.Run("to a fifo", func(t *testing.T) {
		d, dir := newSession(t)
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := unix.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		cpPath := filepath.Join(dir, storage.CheckpointFile)
		if err := os.Remove(cpPath); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(fifo, cpPath); err != nil {
			t.Fatal(err)
		}
		err := within(t, fifo, func() error {
			_, err := d.Load(t.Context())
			return err
		})
		if !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Load: error = %v, want ErrSymlink", err)
		}
	})
}

// within runs f, which must not block on the FIFO at fifo. If f is still
// running after a while, within opens the FIFO's other end to release it and
// fails the test.
func within(t *testing.T, fifo string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(3 * time.Second):
	}
	t.Errorf("still blocked after 3s: it opened the FIFO %s", fifo)
	for {
		// A writer releases an open for reading; a reader one for writing.
		for _, flag := range []int{os.O_WRONLY, os.O_RDONLY} {
			if f, err := os.OpenFile(fifo, flag|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		select {
		case err := <-done:
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestSaveRenameFails(t *testing.T) {
	// session is a non-empty directory from the start: rename(2) could not
	// replace it, and the save must fail without harming it.
	t.Run("session is a directory", func(t *testing.T) {
		dir := newDir(t)
		d, err := storage.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		blocker := filepath.Join(dir, storage.CheckpointFile, "keep")
		if err := os.MkdirAll(blocker, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Save(t.Context(), strings.NewReader("payload")); err == nil {
			t.Fatal("Save succeeded over a directory")
		}
		wantNoNext(t, dir)
		if !exists(t, blocker) {
			t.Error("the directory at session was damaged")
		}
	})

	// session becomes a non-empty directory while the payload streams:
	// the commit finds that session changed under the lock and renames
	// nothing over it.
	t.Run("session replaced while saving", func(t *testing.T) {
		d, dir := newSession(t)
		mustSave(t, d, "good")
		cpPath := filepath.Join(dir, storage.CheckpointFile)
		r := &hookReader{chunks: []string{"half", "rest"}, hook: map[int]func() error{1: func() error {
			if err := os.Remove(cpPath); err != nil {
				return err
			}
			return os.MkdirAll(filepath.Join(cpPath, "keep"), 0o700)
		}}}
		if _, err := d.Save(t.Context(), r, storage.Keep(1)); err == nil {
			t.Fatal("Save succeeded over a directory")
		}
		wantNoNext(t, dir)
		if !exists(t, filepath.Join(cpPath, "keep")) {
			t.Error("the directory at session was damaged")
		}
	})
}
