package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	// Under umask 0 the modes come from ckpt alone; under 022 (the usual
	// one) they must not be widened either.
	for _, mask := range []int{0o022, 0} {
		t.Run(fmt.Sprintf("umask=%03o", mask), func(t *testing.T) {
			old := syscall.Umask(mask)
			defer syscall.Umask(old)

			dir := newDir(t)
			d, err := storage.Init(t.Context(), dir,
				storage.WithTitle("first"), storage.WithApp("app1"),
				storage.WithFlags([]string{"incomplete", "a"}, nil))
			if err != nil {
				t.Fatalf("Init: %v", err)
			}
			st, err := d.Stat(t.Context())
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			h0 := st.Header
			if h0 == nil || h0.Generation != 0 || st.Size != 0 || st.Lock != nil {
				t.Fatalf("Stat after Init = %+v, want generation 0, size 0, no lock", st)
			}
			if !h0.Created.Equal(h0.Saved) || h0.Title != "first" || h0.App != "app1" || !slices.Equal(h0.Flags, []string{"a", "incomplete"}) {
				t.Fatalf("header after Init = %+v", h0)
			}
			wantPerms(t, d)

			steps := []struct {
				payload   string
				opts      []storage.SaveOption
				title     string
				app       string
				flags     []string
				wantOwner string
			}{
				{payload: "one", title: "first", app: "app1", flags: []string{"a", "incomplete"}},
				{
					payload: big(300<<10, '2'), // more than Save's copy buffer
					opts: []storage.SaveOption{
						storage.WithTitle("second"),
						storage.WithFlags([]string{"submitted"}, []string{"incomplete"}),
						storage.WithCommand("test-runner step 2"),
					},
					title: "second", app: "app1", flags: []string{"a", "submitted"}, wantOwner: "test-runner step 2",
				},
				{
					payload: "three",
					opts:    []storage.SaveOption{storage.WithApp("app2"), storage.WithFlags(nil, []string{"a", "not-set"})},
					title:   "second", app: "app2", flags: []string{"submitted"},
				},
			}
			prevSaved := h0.Saved
			for i, s := range steps {
				gen := uint64(i + 1)
				before := time.Now()
				saved, err := d.Save(t.Context(), strings.NewReader(s.payload), s.opts...)
				after := time.Now()
				if err != nil {
					t.Fatalf("Save %d: %v", gen, err)
				}
				if saved.Header.Generation != gen || saved.Size != int64(len(s.payload)) {
					t.Errorf("Save %d returned generation %d, size %d", gen, saved.Header.Generation, saved.Size)
				}
				if saved.Header.Owner == nil || saved.Header.Owner.PID != os.Getpid() || saved.Header.Owner.Command != s.wantOwner {
					t.Errorf("Save %d: owner = %+v, want this process with command %q", gen, saved.Header.Owner, s.wantOwner)
				}

				cp, got := mustLoad(t, d)
				h := cp.Header
				if got != s.payload {
					t.Errorf("Load after save %d: payload %.20q (%d bytes), want %.20q (%d bytes)", gen, got, len(got), s.payload, len(s.payload))
				}
				if h.Generation != gen {
					t.Errorf("Load after save %d: generation %d", gen, h.Generation)
				}
				if !h.Created.Equal(h0.Created) {
					t.Errorf("save %d: Created = %v, want it carried over from Init: %v", gen, h.Created, h0.Created)
				}
				if h.Saved.Before(prevSaved) || h.Saved.Before(before.Truncate(time.Microsecond)) || h.Saved.After(after) {
					t.Errorf("save %d: Saved = %v, want between %v and %v and not before %v", gen, h.Saved, before, after, prevSaved)
				}
				prevSaved = h.Saved
				if h.Title != s.title || h.App != s.app || !slices.Equal(h.Flags, s.flags) {
					t.Errorf("save %d: title %q, app %q, flags %q; want %q, %q, %q", gen, h.Title, h.App, h.Flags, s.title, s.app, s.flags)
				}

				st, err := d.Stat(t.Context())
				if err != nil {
					t.Fatalf("Stat after save %d: %v", gen, err)
				}
				if st.ID != d.ID() || st.Header.Generation != gen || st.Size != int64(len(s.payload)) || !st.Modified.Equal(h.Saved) || st.Lock != nil {
					t.Errorf("Stat after save %d = {ID %q, generation %d, Size %d, Modified %v, Lock %+v}; want {%q, %d, %d, %v, nil}",
						gen, st.ID, st.Header.Generation, st.Size, st.Modified, st.Lock, d.ID(), gen, len(s.payload), h.Saved)
				}
				wantNoNext(t, d)
				wantPerms(t, d)
			}
		})
	}
}

// wantPerms checks the modes of the session directory and of every file in
// it: the checkpoint and the generations kept beside it.
func wantPerms(t *testing.T, d *storage.Dir) {
	t.Helper()
	fi, err := os.Lstat(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	if want := fs.ModeDir | 0o700; fi.Mode() != want {
		t.Errorf("mode of %s = %v, want %v", d.ID(), fi.Mode(), want)
	}
	des, err := os.ReadDir(d.Path())
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != 0o600 {
			t.Errorf("mode of %s = %v, want %v", filepath.Join(d.ID(), de.Name()), fi.Mode(), fs.FileMode(0o600))
		}
	}
}

func TestLoadNoCheckpoint(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(t *testing.T) *storage.Dir
		wantHeader bool
	}{
		{
			name:       "generation 0",
			setup:      func(t *testing.T) *storage.Dir { return newSession(t) },
			wantHeader: true,
		},
		{
			name: "no session file",
			setup: func(t *testing.T) *storage.Dir {
				d, err := storage.Open(newDir(t))
				if err != nil {
					t.Fatal(err)
				}
				return d
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.setup(t)
			cp, err := d.Load(t.Context())
			if !errors.Is(err, storage.ErrNoCheckpoint) || cp != nil {
				t.Errorf("Load = %v, %v; want nil, ErrNoCheckpoint", cp, err)
			}
			st, err := d.Stat(t.Context())
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if (st.Header != nil) != tt.wantHeader || st.Size != 0 || st.Lock != nil || st.Modified.IsZero() {
				t.Errorf("Stat = %+v; want header: %v, size 0, no lock, a modification time", st, tt.wantHeader)
			}
			if st.Header != nil && st.Header.Generation != 0 {
				t.Errorf("Stat: generation %d, want 0", st.Header.Generation)
			}
		})
	}
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
				target := newSession(t).Path()
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
		if d.ID() != filepath.Base(dir) || d.Path() != dir {
			t.Errorf("ID, Path = %q, %q; want %q, %q", d.ID(), d.Path(), filepath.Base(dir), dir)
		}
	})
}

// A symbolic link planted at session is never followed: not to read it, not
// to build on it, not to write through it.
func TestCheckpointSymlink(t *testing.T) {
	t.Run("to another checkpoint", func(t *testing.T) {
		other := newSession(t)
		mustSave(t, other, "someone else's secret")
		target := filepath.Join(other.Path(), storage.CheckpointFile)
		before, err := os.ReadFile(target)
		if err != nil {
			t.Fatal(err)
		}

		d := newSession(t)
		cpPath := filepath.Join(d.Path(), storage.CheckpointFile)
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
		wantNoNext(t, d)
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
		d := newSession(t)
		fifo := filepath.Join(t.TempDir(), "fifo")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Fatal(err)
		}
		cpPath := filepath.Join(d.Path(), storage.CheckpointFile)
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

func TestIfGeneration(t *testing.T) {
	d := newSession(t)
	tests := []struct {
		name     string
		ifGen    uint64
		payload  string
		wantErr  error
		wantGen  uint64
		wantLoad string
	}{
		{name: "0 on a new session", ifGen: 0, payload: "a", wantGen: 1, wantLoad: "a"},
		{name: "match", ifGen: 1, payload: "b", wantGen: 2, wantLoad: "b"},
		{name: "stale expectation", ifGen: 1, payload: "c", wantErr: storage.ErrConflict, wantGen: 2, wantLoad: "b"},
		{name: "future generation", ifGen: 7, payload: "c", wantErr: storage.ErrConflict, wantGen: 2, wantLoad: "b"},
		{name: "match after a conflict", ifGen: 2, payload: "d", wantGen: 3, wantLoad: "d"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved, err := d.Save(t.Context(), strings.NewReader(tt.payload), storage.IfGeneration(tt.ifGen))
			switch {
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("Save: error = %v, want %v", err, tt.wantErr)
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Save: %v", err)
			case tt.wantErr == nil && saved.Header.Generation != tt.wantGen:
				t.Errorf("Save: generation %d, want %d", saved.Header.Generation, tt.wantGen)
			}
			wantLoad(t, d, tt.wantGen, tt.wantLoad)
			wantNoNext(t, d)
		})
	}
}

func TestEmptyPayload(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		d := newSession(t)
		if _, err := d.Save(t.Context(), strings.NewReader("")); !errors.Is(err, storage.ErrEmpty) {
			t.Errorf("Save on generation 0: error = %v, want ErrEmpty", err)
		}
		if _, err := d.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) {
			t.Errorf("Load: error = %v, want ErrNoCheckpoint", err)
		}
		mustSave(t, d, "previous")
		if _, err := d.Save(t.Context(), strings.NewReader(""), storage.WithTitle("changed")); !errors.Is(err, storage.ErrEmpty) {
			t.Errorf("Save: error = %v, want ErrEmpty", err)
		}
		wantNoNext(t, d)
		cp, _ := mustLoad(t, d)
		if cp.Header.Title != "" {
			t.Errorf("the refused save changed the title to %q", cp.Header.Title)
		}
		wantLoad(t, d, 1, "previous")
	})
	t.Run("allowed", func(t *testing.T) {
		d := newSession(t)
		mustSave(t, d, "previous")
		saved, err := d.Save(t.Context(), strings.NewReader(""), storage.AllowEmpty())
		if err != nil {
			t.Fatalf("Save with AllowEmpty: %v", err)
		}
		if saved.Size != 0 || saved.Header.Generation != 2 {
			t.Errorf("Save = generation %d, size %d; want 2, 0", saved.Header.Generation, saved.Size)
		}
		wantLoad(t, d, 2, "")
		wantNoNext(t, d)
	})
}

var errBoom = errors.New("boom: the producer failed")

// Every failure before the rename leaves session as it was, removes
// session.next and is returned.
func TestSaveFailureLosesNothing(t *testing.T) {
	const n = 1 << 20 // past every buffer, so that the failing save wrote to disk
	tests := []struct {
		name    string
		payload func(d *storage.Dir, cancel context.CancelFunc) *hookReader
		wantErr error
	}{
		{
			name: "reader fails at once",
			payload: func(*storage.Dir, context.CancelFunc) *hookReader {
				return &hookReader{chunks: []string{"x"}, hook: map[int]func() error{0: func() error { return errBoom }}}
			},
			wantErr: errBoom,
		},
		{
			name: "reader fails after 1 MiB",
			payload: func(*storage.Dir, context.CancelFunc) *hookReader {
				return &hookReader{chunks: []string{big(n, 'n'), "x"}, hook: map[int]func() error{1: func() error { return errBoom }}}
			},
			wantErr: errBoom,
		},
		{
			name: "context cancelled while streaming",
			payload: func(_ *storage.Dir, cancel context.CancelFunc) *hookReader {
				return &hookReader{chunks: []string{big(n, 'c'), big(n, 'd')}, hook: map[int]func() error{1: func() error { cancel(); return nil }}}
			},
			wantErr: context.Canceled,
		},
		{
			name: "context cancelled at the end of the payload",
			payload: func(_ *storage.Dir, cancel context.CancelFunc) *hookReader {
				return &hookReader{chunks: []string{big(n, 'e'), ""}, hook: map[int]func() error{1: func() error { cancel(); return nil }}}
			},
			wantErr: context.Canceled,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newSession(t)
			mustSave(t, d, "good")
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			r := tt.payload(d, cancel)
			sawNext := false
			first := r.hook[0]
			r.hook[0] = func() error {
				sawNext = exists(t, filepath.Join(d.Path(), storage.NextFile))
				if first != nil {
					return first()
				}
				return nil
			}

			saved, err := d.Save(ctx, r, storage.WithTitle("bad"))
			if !errors.Is(err, tt.wantErr) || saved != nil {
				t.Fatalf("Save = %v, %v; want nil, %v", saved, err, tt.wantErr)
			}
			if !sawNext {
				t.Errorf("%s did not exist while the payload streamed", storage.NextFile)
			}
			wantNoNext(t, d)
			wantLoad(t, d, 1, "good")
			if st, err := d.Stat(t.Context()); err != nil || st.Lock != nil || st.Header.Title != "" {
				t.Errorf("Stat = %+v, %v; want no lock and the old title", st, err)
			}
			if s := mustSave(t, d, "next"); s.Header.Generation != 2 {
				t.Errorf("the save after the failure got generation %d, want 2", s.Header.Generation)
			}
			wantLoad(t, d, 2, "next")
		})
	}

	t.Run("context cancelled before Save", func(t *testing.T) {
		d := newSession(t)
		mustSave(t, d, "good")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := d.Save(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Save: error = %v, want context.Canceled", err)
		}
		wantNoNext(t, d)
		wantLoad(t, d, 1, "good")
	})
}

func TestSaveRenameFails(t *testing.T) {
	// session is a non-empty directory from the start: rename(2) could not
	// replace it, and the save must fail without harming it.
	t.Run("session is a directory", func(t *testing.T) {
		d, err := storage.Open(newDir(t))
		if err != nil {
			t.Fatal(err)
		}
		blocker := filepath.Join(d.Path(), storage.CheckpointFile, "keep")
		if err := os.MkdirAll(blocker, 0o700); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Save(t.Context(), strings.NewReader("payload")); err == nil {
			t.Fatal("Save succeeded over a directory")
		}
		wantNoNext(t, d)
		if !exists(t, blocker) {
			t.Error("the directory at session was damaged")
		}
	})

	// session becomes a non-empty directory while the payload streams, so
	// that the failure is the rename's own. Keep(1) skips the hard link to
	// the generation being replaced, which would fail first.
	t.Run("session replaced while saving", func(t *testing.T) {
		d := newSession(t)
		mustSave(t, d, "good")
		cpPath := filepath.Join(d.Path(), storage.CheckpointFile)
		r := &hookReader{chunks: []string{"half", "rest"}, hook: map[int]func() error{1: func() error {
			if err := os.Remove(cpPath); err != nil {
				return err
			}
			return os.MkdirAll(filepath.Join(cpPath, "keep"), 0o700)
		}}}
		_, err := d.Save(t.Context(), r, storage.Keep(1))
		if err == nil {
			t.Fatal("Save succeeded over a directory")
		}
		if !strings.Contains(err.Error(), "rename") {
			t.Errorf("Save: error = %v, want the rename's", err)
		}
		var errno syscall.Errno
		if !errors.As(err, &errno) {
			t.Errorf("Save: error = %v, want it to wrap the system error", err)
		}
		wantNoNext(t, d)
		if !exists(t, filepath.Join(cpPath, "keep")) {
			t.Error("the directory at session was damaged")
		}
	})
}

// corrupt applies f to the bytes of d's checkpoint file; off is where the
// payload starts.
func corrupt(t *testing.T, d *storage.Dir, f func(b []byte, off int) []byte) {
	t.Helper()
	p := filepath.Join(d.Path(), storage.CheckpointFile)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	_, off, err := checkpoint.ReadHeader(strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, f(b, int(off)), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCorruption(t *testing.T) {
	flip := func(at func(b []byte, off int) int) func([]byte, int) []byte {
		return func(b []byte, off int) []byte { b[at(b, off)] ^= 0x10; return b }
	}
	tests := []struct {
		name        string
		damage      func(b []byte, off int) []byte
		statCorrupt bool // the header itself is damaged
	}{
		{name: "truncated by one byte", damage: func(b []byte, _ int) []byte { return b[:len(b)-1] }},
		{name: "truncated to the header", damage: func(b []byte, off int) []byte { return b[:off] }},
		{name: "truncated in the payload", damage: func(b []byte, off int) []byte { return b[:off+100] }},
		{name: "truncated in the header", damage: func(b []byte, off int) []byte { return b[:off/2] }, statCorrupt: true},
		{name: "truncated to nothing", damage: func(b []byte, _ int) []byte { return b[:0] }, statCorrupt: true},
		{name: "bit flipped in the payload", damage: flip(func(b []byte, off int) int { return off + 1000 })},
		{name: "bit flipped in the last payload byte", damage: flip(func(b []byte, _ int) int { return len(b) - int(checkpoint.TrailerSize) - 1 })},
		{name: "bit flipped in the trailer length", damage: flip(func(b []byte, _ int) int { return len(b) - 33 })},
		{name: "bit flipped in the checksum", damage: flip(func(b []byte, _ int) int { return len(b) - 1 })},
		{name: "byte appended", damage: func(b []byte, _ int) []byte { return append(b, 0) }},
		{name: "bit flipped in the header", damage: flip(func(_ []byte, _ int) int { return 20 }), statCorrupt: true},
		{name: "bit flipped in the header checksum", damage: flip(func(_ []byte, off int) int { return off - 1 }), statCorrupt: true},
		{name: "bit flipped in the magic", damage: flip(func(_ []byte, _ int) int { return 0 }), statCorrupt: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// With no older generation to fall back to, Load fails.
			t.Run("only generation", func(t *testing.T) {
				d := newSession(t)
				mustSave(t, d, big(4096, '1'))
				corrupt(t, d, tt.damage)
				wantCorruptLoad(t, d)
				wantStat(t, d, tt.statCorrupt, 1)
			})
			// With one, Strict still fails; the default falls back to it
			// and says what it skipped.
			t.Run("with history", func(t *testing.T) {
				d := newSession(t)
				mustSave(t, d, big(4096, '1'))
				mustSave(t, d, big(4096, '2'))
				corrupt(t, d, tt.damage)
				wantCorruptLoad(t, d, storage.Strict())
				cp, got := mustLoad(t, d)
				if cp.Header.Generation != 1 || got != big(4096, '1') {
					t.Errorf("Load fell back to generation %d, %.10q; want generation 1", cp.Header.Generation, got)
				}
				var ce *checkpoint.CorruptError
				if len(cp.Skipped) != 1 || !errors.As(cp.Skipped[0], &ce) {
					t.Errorf("Load: Skipped = %v, want the corrupt current checkpoint", cp.Skipped)
				}
				wantStat(t, d, tt.statCorrupt, 2)
			})
		})
	}

	t.Run("every generation damaged", func(t *testing.T) {
		d := newSession(t)
		for _, p := range []string{"1", "2", "3"} {
			mustSave(t, d, big(4096, p[0]))
		}
		des, err := os.ReadDir(d.Path())
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			p := filepath.Join(d.Path(), de.Name())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)-1] ^= 1
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		wantCorruptLoad(t, d)
		for _, g := range []uint64{1, 2, 3} {
			cp, err := d.Load(t.Context(), storage.AtGeneration(g))
			var ce *checkpoint.CorruptError
			if cp != nil || !errors.As(err, &ce) {
				t.Errorf("Load(AtGeneration(%d)) = %v, %v; want a *checkpoint.CorruptError", g, cp, err)
			}
		}
	})
}

// wantCorruptLoad checks that Load fails with a *checkpoint.CorruptError and
// hands out no reader.
func wantCorruptLoad(t *testing.T, d *storage.Dir, opts ...storage.LoadOption) {
	t.Helper()
	cp, err := d.Load(t.Context(), opts...)
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("Load: error = %v, want a *checkpoint.CorruptError", err)
	}
	if cp != nil {
		t.Errorf("Load handed out a reader for a corrupt checkpoint")
		cp.Close()
	}
}

// wantStat checks Stat on a session whose current checkpoint is damaged:
// Stat reads only the header, so it fails only if the header is damaged.
func wantStat(t *testing.T, d *storage.Dir, corrupt bool, gen uint64) {
	t.Helper()
	st, err := d.Stat(t.Context())
	var ce *checkpoint.CorruptError
	switch {
	case corrupt && !errors.As(err, &ce):
		t.Errorf("Stat = %+v, %v; want a *checkpoint.CorruptError", st, err)
	case !corrupt && (err != nil || st.Header.Generation != gen):
		t.Errorf("Stat = %+v, %v; want generation %d", st, err, gen)
	}
}
