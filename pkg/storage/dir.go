package storage

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// File names inside a session directory.
const (
	CheckpointFile = "session"
	NextFile       = "session.next"
)

// TrashPrefix starts the name a session directory is renamed to while it is
// being removed, so that listings never see a half-removed session.
const TrashPrefix = ".trash-"

const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// Dir is a session stored in a local directory. It implements Session.
// A Dir holds no open files; it is safe for concurrent use, and any number of
// processes may use the same directory at once.
type Dir struct {
	id   string
	path string
	now  func() time.Time
}

var _ Session = (*Dir)(nil)

// Open returns the session in the directory at path. It fails with
// ErrNotFound if there is none, and with ErrSymlink if path is a symbolic
// link.
func Open(path string) (*Dir, error) {
	d := &Dir{id: filepath.Base(path), path: path, now: time.Now}
	if err := d.check(); err != nil {
		return nil, err
	}
	return d, nil
}

// Init writes generation 0 of a new session into the empty directory at
// path: a checkpoint with metadata and no payload, so that a session has its
// title and flags before its first save.
func Init(ctx context.Context, path string, opts ...SaveOption) (*Dir, error) {
	d, err := Open(path)
	if err != nil {
		return nil, err
	}
	_, err = d.commit(ctx, newSaveConfig(opts), true, func(io.Writer) error { return nil })
	if err != nil {
		return nil, err
	}
	return d, nil
}

// ID returns the directory's base name.
func (d *Dir) ID() string { return d.id }

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

func (d *Dir) check() error {
	fi, err := os.Lstat(d.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("session %s: %w", d.id, ErrNotFound)
	case err != nil:
		return fmt.Errorf("session %s: %w", d.id, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("session %s: %w: %s is a symbolic link", d.id, ErrSymlink, d.path)
	case !fi.IsDir():
		return fmt.Errorf("session %s: %s is not a directory", d.id, d.path)
	}
	return nil
}

func (d *Dir) file(name string) string { return filepath.Join(d.path, name) }

// openCheckpoint opens the current checkpoint file without following a
// symbolic link. It returns ErrNoCheckpoint when there is none.
func (d *Dir) openCheckpoint() (*os.File, error) {
	f, err := os.OpenFile(d.file(CheckpointFile), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, fs.ErrNotExist):
		if err := d.check(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("session %s: %w", d.id, ErrNoCheckpoint)
	case errors.Is(err, syscall.ELOOP):
		return nil, fmt.Errorf("session %s: %w: %s is a symbolic link", d.id, ErrSymlink, d.file(CheckpointFile))
	default:
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
}

// readHeader returns the current checkpoint's header and the size of its
// file, or nil, 0 if it has none.
func (d *Dir) readHeader() (*checkpoint.Header, int64, error) {
	f, err := d.openCheckpoint()
	if errors.Is(err, ErrNoCheckpoint) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	h, off, err := checkpoint.ReadHeader(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return nil, 0, fmt.Errorf("session %s: %s: %w", d.id, d.file(CheckpointFile), err)
	}
	return h, fi.Size() - off - checkpoint.TrailerSize, nil
}

// Stat implements Session.
func (d *Dir) Stat(ctx context.Context) (*Status, error) {
	h, size, err := d.readHeader()
	if err != nil {
		return nil, err
	}
	st := &Status{ID: d.id, Header: h, Size: max(size, 0)}
	if h != nil {
		st.Modified = h.Saved
	} else if fi, err := os.Lstat(d.path); err == nil {
		st.Modified = fi.ModTime()
	}
	if st.Lock, err = inspectLock(d.file(NextFile), d.now()); err != nil {
		return nil, fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	return st, nil
}

// Load implements Session.
func (d *Dir) Load(ctx context.Context) (*Checkpoint, error) {
	f, err := d.openCheckpoint()
	if err != nil {
		return nil, err
	}
	cp, err := d.verify(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return cp, nil
}

func (d *Dir) verify(f *os.File) (*Checkpoint, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("session %s: %s is not a regular file", d.id, f.Name())
	}
	info, err := checkpoint.Verify(f, fi.Size())
	if err != nil {
		return nil, fmt.Errorf("session %s: %s: %w", d.id, f.Name(), err)
	}
	if info.Header.Generation == 0 {
		return nil, fmt.Errorf("session %s: %w", d.id, ErrNoCheckpoint)
	}
	return &Checkpoint{
		Header: info.Header,
		Size:   info.PayloadSize,
		ReadCloser: struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(f, info.PayloadOffset, info.PayloadSize), f},
	}, nil
}

// Save implements Session.
func (d *Dir) Save(ctx context.Context, payload io.Reader, opts ...SaveOption) (*Saved, error) {
	c := newSaveConfig(opts)
	return d.commit(ctx, c, false, func(w io.Writer) error {
		buf := make([]byte, 256<<10)
		// Hide payload's WriterTo so that the copy goes through buf.
		_, err := io.CopyBuffer(w, ctxReader{ctx, payload}, buf)
		return err
	})
}

// commit runs the next-file protocol. write streams the payload; init makes
// generation 0 of a new session.
func (d *Dir) commit(ctx context.Context, c *saveConfig, init bool, write func(io.Writer) error) (saved *Saved, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	next := d.file(NextFile)
	f, err := os.OpenFile(next, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, filePerm)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, d.lockedError()
		}
		if err := d.check(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("session %s: create %s: %w", d.id, NextFile, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, abort(f, next))
		}
	}()
	// Waits only while an inspector holds its brief shared probe.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("session %s: lock %s: %w", d.id, NextFile, err)
	}
	prev, _, err := d.readHeader()
	if err != nil {
		return nil, err
	}
	var gen uint64
	if prev != nil {
		gen = prev.Generation
	}
	if init && prev != nil {
		return nil, fmt.Errorf("session %s: already initialized", d.id)
	}
	if c.ifGeneration != nil && *c.ifGeneration != gen {
		return nil, fmt.Errorf("session %s: %w: expected generation %d, the current one is %d", d.id, ErrConflict, *c.ifGeneration, gen)
	}
	now := c.now()
	h := c.next(prev, currentOwner(c.command, now))
	if init {
		h.Generation = 0
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	cw, err := checkpoint.NewWriter(bw, h)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	// The header names the owner: make it visible before the payload streams.
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("session %s: write %s: %w", d.id, NextFile, err)
	}
	if err := write(cw); err != nil {
		return nil, fmt.Errorf("session %s: write %s: %w", d.id, NextFile, err)
	}
	if cw.Size() == 0 && !init && !c.allowEmpty {
		return nil, fmt.Errorf("session %s: %w", d.id, ErrEmpty)
	}
	if err := cw.Close(); err != nil {
		return nil, fmt.Errorf("session %s: write %s: %w", d.id, NextFile, err)
	}
	if err := bw.Flush(); err != nil {
		return nil, fmt.Errorf("session %s: write %s: %w", d.id, NextFile, err)
	}
	if err := f.Sync(); err != nil {
		return nil, fmt.Errorf("session %s: sync %s: %w", d.id, NextFile, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !sameFile(f, next) {
		return nil, &LockedError{Session: d.id, Lock: Lock{Reason: "this writer's lock was broken while it was saving; nothing was saved"}}
	}
	if err := os.Rename(next, d.file(CheckpointFile)); err != nil {
		return nil, fmt.Errorf("session %s: rename %s: %w", d.id, NextFile, err)
	}
	if err := syncDir(d.path); err != nil {
		return nil, fmt.Errorf("session %s: the checkpoint was renamed into place but may not survive a crash: sync directory: %w", d.id, err)
	}
	return &Saved{Header: h, Size: cw.Size()}, nil
}

// abort removes a failed save's session.next, if it is still f's, and closes
// f, releasing the lock.
func abort(f *os.File, next string) error {
	var err error
	if sameFile(f, next) {
		if rerr := os.Remove(next); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			err = fmt.Errorf("remove %s: %w", next, rerr)
		}
	}
	return errors.Join(err, f.Close())
}

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

func (d *Dir) lockedError() error {
	l, err := inspectLock(d.file(NextFile), d.now())
	if err != nil {
		return fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	if l == nil {
		// The writer finished between our create and our look.
		l = &Lock{Reason: "another writer was saving"}
	}
	return &LockedError{Session: d.id, Lock: *l}
}

// BreakLock implements Session. It holds the lock file's flock while it
// decides and removes, and removes only the file it judged.
func (d *Dir) BreakLock(ctx context.Context, force bool) (*Lock, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	next := d.file(NextFile)
	f, err := os.OpenFile(next, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, syscall.ELOOP):
		if err := os.Remove(next); err != nil {
			return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
		}
		return &Lock{Stale: true, Reason: "session.next was a symbolic link, not a writer's file"}, nil
	case err != nil:
		return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
	}
	defer f.Close()
	free := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil
	l, err := judgeLock(f, free, d.now())
	if err != nil {
		return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
	}
	if !l.Stale && !force {
		return nil, &LockedError{Session: d.id, Lock: *l}
	}
	if !sameFile(f, next) {
		// Its writer finished or aborted while we looked: nothing to break.
		return nil, nil
	}
	if err := os.Remove(next); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
	}
	return l, syncDir(d.path)
}

// Remove implements Session. The directory is first renamed to a hidden
// trash name in the repository, atomically, then deleted.
func (d *Dir) Remove(ctx context.Context, force bool) error {
	if err := d.check(); err != nil {
		return err
	}
	l, err := inspectLock(d.file(NextFile), d.now())
	if err != nil {
		return fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	if l != nil && !l.Stale && !force {
		return &LockedError{Session: d.id, Lock: *l}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	trash := filepath.Join(filepath.Dir(d.path), TrashPrefix+d.id+"-"+hex.EncodeToString(rnd[:]))
	if err := os.Rename(d.path, trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("session %s: %w", d.id, ErrNotFound)
		}
		return fmt.Errorf("session %s: remove: %w", d.id, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("session %s: removed from the repository, but deleting %s failed: %w", d.id, trash, err)
	}
	return nil
}
