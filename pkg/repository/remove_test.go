package repository_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// holdLock plants a session.next in d the way a writer does: created with
// O_EXCL, a header naming this process as its owner, and, if live, an
// exclusive flock that stays held until the test ends.
func holdLock(t *testing.T, d *storage.Session, live bool) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(d.Location(), storage.NextFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if live {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}
	host, _ := os.Hostname()
	now := time.Now().UTC()
	h := &checkpoint.Header{Generation: 1, Saved: now, Created: now,
		Owner: &checkpoint.Owner{PID: os.Getpid(), Host: host, Started: now, Command: "holdLock"}}
	rec, err := checkpoint.EncodeManifest(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
}

func gone(t *testing.T, path string) bool {
	t.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return err != nil
}

// noTrash checks that a removal left no hidden trash directory behind.
func noTrash(t *testing.T, r *repository.Repository) {
	t.Helper()
	des, err := os.ReadDir(r.Root())
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), storage.TrashPrefix) {
			t.Errorf("removal left %s behind", de.Name())
		}
	}
}

func TestRemove(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T, d *storage.Session)
		force      bool
		wantLocked bool // refused with a live *LockedError
	}{
		{name: "new session", setup: func(*testing.T, *storage.Session) {}},
		{name: "saved session with history", setup: func(t *testing.T, d *storage.Session) {
			for _, p := range []string{"1", "2", "3", "4"} {
				if _, err := d.Save(t.Context(), strings.NewReader(p)); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{name: "live lock", setup: func(t *testing.T, d *storage.Session) { holdLock(t, d, true) }, wantLocked: true},
		{name: "live lock, forced", setup: func(t *testing.T, d *storage.Session) { holdLock(t, d, true) }, force: true},
		{name: "stale lock", setup: func(t *testing.T, d *storage.Session) { holdLock(t, d, false) }},
		{
			name: "lock being created",
			setup: func(t *testing.T, d *storage.Session) {
				if err := os.WriteFile(filepath.Join(d.Location(), storage.NextFile), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantLocked: true,
		},
		{
			name: "symlink at session.next",
			setup: func(t *testing.T, d *storage.Session) {
				if err := os.Symlink("/", filepath.Join(d.Location(), storage.NextFile)); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			other := mustCreate(t, r, repository.CreateOptions{Prefix: "other"})
			d := mustCreate(t, r, repository.CreateOptions{Prefix: "victim"})
			tt.setup(t, d)

			err := r.Remove(t.Context(), d.ID(), tt.force)
			if tt.wantLocked {
				var le *storage.LockedError
				if !errors.As(err, &le) {
					t.Fatalf("Remove: error = %v, want a *storage.LockedError", err)
				}
				if le.Stale {
					t.Errorf("Remove: lock judged stale: %v", le)
				}
				if le.Owner != nil && le.Owner.PID != os.Getpid() {
					t.Errorf("Remove: lock owner %+v, want this process", le.Owner)
				}
				if gone(t, d.Location()) {
					t.Fatal("a refused Remove removed the session")
				}
				if _, err := r.Open(context.Background(), d.ID()); err != nil {
					t.Errorf("Open after a refused Remove: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Remove: %v", err)
			}
			if !gone(t, d.Location()) {
				t.Error("the session directory is still there")
			}
			if _, err := r.Open(context.Background(), d.ID()); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Open after Remove: error = %v, want storage.ErrNotFound", err)
			}
			if err := r.Remove(t.Context(), d.ID(), false); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("second Remove: error = %v, want storage.ErrNotFound", err)
			}
			entries, err := r.List(t.Context(), repository.Filter{})
			if err != nil || len(entries) != 1 || entries[0].ID != other.ID() {
				t.Errorf("List after Remove = %q, %v; want only %s", ids(entries), err, other.ID())
			}
			noTrash(t, r)
		})
	}
}

func TestRemoveMissing(t *testing.T) {
	r := newRepo(t)
	mustCreate(t, r, repository.CreateOptions{})
	for _, id := range []string{"nightly-abcdefghijkl", "session"} {
		if err := r.Remove(t.Context(), id, false); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Remove(%q) = %v, want storage.ErrNotFound", id, err)
		}
		if err := r.Remove(t.Context(), id, true); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Remove(%q, force) = %v, want storage.ErrNotFound", id, err)
		}
	}
}

// A session directory that is a symbolic link is refused, and what it points
// to is left alone.
func TestRemoveSymlinkedSession(t *testing.T) {
	r := newRepo(t)
	target := mustCreate(t, newRepo(t), repository.CreateOptions{Prefix: "target"})
	mustCreate(t, r, repository.CreateOptions{}) // makes the root
	link := filepath.Join(r.Root(), "linked-abcdefghijkl")
	if err := os.Symlink(target.Location(), link); err != nil {
		t.Fatal(err)
	}
	for _, force := range []bool{false, true} {
		if err := r.Remove(t.Context(), "linked-abcdefghijkl", force); !errors.Is(err, storage.ErrSymlink) {
			t.Errorf("Remove(force %v) = %v, want storage.ErrSymlink", force, err)
		}
	}
	if gone(t, link) || gone(t, filepath.Join(target.Location(), storage.CheckpointFile)) {
		t.Error("the link or its target was removed")
	}
}

// A writer whose session is removed under it with force fails instead of
// reporting a save that no longer exists.
func TestRemoveForcedUnderWriter(t *testing.T) {
	r := newRepo(t)
	d := mustCreate(t, r, repository.CreateOptions{Prefix: "busy"})
	if _, err := d.Save(t.Context(), strings.NewReader("first")); err != nil {
		t.Fatal(err)
	}
	var refused, forced error
	payload := &midway{first: "half ", rest: "rest", at: func() {
		refused = r.Remove(t.Context(), d.ID(), false)
		forced = r.Remove(t.Context(), d.ID(), true)
	}}
	_, err := d.Save(t.Context(), payload)
	var le *storage.LockedError
	if !errors.As(refused, &le) || le.Stale || le.Owner == nil || le.Owner.PID != os.Getpid() {
		t.Errorf("Remove during a save = %v, want a live *storage.LockedError naming this process", refused)
	}
	if forced != nil {
		t.Fatalf("Remove(force) during a save: %v", forced)
	}
	if err == nil {
		t.Error("the save whose session was removed reported success")
	}
	if !gone(t, d.Location()) {
		t.Error("the removed session came back")
	}
	noTrash(t, r)
}

// midway reads first, calls at, then reads rest.
type midway struct {
	first, rest string
	at          func()
	called      bool
}

func (m *midway) Read(p []byte) (int, error) {
	if m.first != "" {
		n := copy(p, m.first)
		m.first = m.first[n:]
		return n, nil
	}
	if !m.called {
		m.called = true
		m.at()
	}
	if m.rest == "" {
		return 0, io.EOF
	}
	n := copy(p, m.rest)
	m.rest = m.rest[n:]
	return n, nil
}
