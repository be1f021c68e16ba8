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
	// TempPrefix starts the name of the file a writer prepares before it
	// links it to NextFile. One left behind is an orphan of a crashed
	// writer, harmless, swept by gc.
	TempPrefix = ".tmp-"
	// LogDir holds per-step logs.
	LogDir = "logs"
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
	fs   fileSystem
}

var _ Session = (*Dir)(nil)

// Open returns the session in the directory at path. It fails with
// ErrNotFound if there is none, and with ErrSymlink if path is a symbolic
// link.
func Open(path string) (*Dir, error) {
	d := &Dir{id: filepath.Base(path), path: path, now: time.Now, fs: osFS{}}
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
	c := NewSaveConfig(opts)
	c.Init = true
	tx, err := d.begin(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Commit(ctx, nil); err != nil {
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

// openRegular opens a checkpoint file for reading without following a
// symbolic link or blocking on a planted FIFO, and checks that it is a
// regular file. Errors name the session; test a missing file with
// errors.Is(err, fs.ErrNotExist).
func (d *Dir) openRegular(name string) (*os.File, os.FileInfo, error) {
	path := d.file(name)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, nil, fmt.Errorf("session %s: %w: %s is a symbolic link", d.id, ErrSymlink, path)
	case err != nil:
		return nil, nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	return f, fi, nil
}

// openCheckpoint opens the current checkpoint file. It returns
// ErrNoCheckpoint when there is none.
func (d *Dir) openCheckpoint() (*os.File, os.FileInfo, error) {
	f, fi, err := d.openRegular(CheckpointFile)
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.check(); err != nil {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("session %s: %w", d.id, ErrNoCheckpoint)
	}
	return f, fi, err
}

// readHeader reads the header of the open checkpoint file f and returns it
// with the payload size.
func (d *Dir) readHeader(f *os.File, fi os.FileInfo) (*checkpoint.Header, int64, error) {
	h, off, err := checkpoint.ReadHeader(bufio.NewReaderSize(f, 4096))
	if err != nil {
		return nil, 0, fmt.Errorf("session %s: %s: %w", d.id, f.Name(), err)
	}
	return h, max(fi.Size()-off-checkpoint.TrailerSize, 0), nil
}

// current returns the current checkpoint's header and payload size, or nil,
// 0 if the session has no checkpoint file.
func (d *Dir) current() (*checkpoint.Header, int64, error) {
	f, fi, err := d.openCheckpoint()
	if errors.Is(err, ErrNoCheckpoint) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return d.readHeader(f, fi)
}

// Stat implements Session.
func (d *Dir) Stat(ctx context.Context) (*Status, error) {
	h, size, err := d.current()
	if err != nil {
		return nil, err
	}
	st := &Status{ID: d.id, Header: h, Size: size}
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

// Load implements Session. Without options it returns the current
// checkpoint or, when that fails its integrity check, the newest intact
// older generation, naming the damaged ones in Checkpoint.Skipped.
func (d *Dir) Load(ctx context.Context, opts ...LoadOption) (*Checkpoint, error) {
	c := NewLoadConfig(opts)
	if c.Generation != nil {
		return d.loadGeneration(*c.Generation)
	}
	cp, err := d.loadFile(CheckpointFile)
	var ce *checkpoint.CorruptError
	if err == nil || c.Strict || !errors.As(err, &ce) {
		return cp, err
	}
	gens, herr := d.historyGenerations()
	if herr != nil {
		return nil, errors.Join(err, herr)
	}
	skipped := []error{err}
	for _, g := range gens {
		cp, gerr := d.loadFile(historyName(g))
		if gerr == nil {
			cp.Skipped = skipped
			return cp, nil
		}
		if errors.Is(gerr, fs.ErrNotExist) {
			continue // pruned while we looked
		}
		if errors.Is(gerr, ErrNoCheckpoint) {
			break // this and older generations hold no payload
		}
		skipped = append(skipped, gerr)
	}
	if len(skipped) == 1 {
		return nil, err
	}
	return nil, fmt.Errorf("session %s: no intact generation left: %w", d.id, errors.Join(skipped...))
}

func (d *Dir) loadGeneration(n uint64) (*Checkpoint, error) {
	h, _, err := d.current()
	if err == nil && h != nil && h.Generation == n && n > 0 {
		return d.loadFile(CheckpointFile)
	}
	cp, err := d.loadFile(historyName(n))
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.check(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("session %s: generation %d: %w", d.id, n, ErrNoGeneration)
	}
	if err == nil && cp.Header.Generation != n {
		cp.Close()
		return nil, fmt.Errorf("session %s: %s: %w", d.id, historyName(n), &checkpoint.CorruptError{Reason: fmt.Sprintf("holds generation %d, not %d", cp.Header.Generation, n)})
	}
	return cp, err
}

// loadFile verifies the checkpoint file name and returns it open, positioned
// on its payload.
func (d *Dir) loadFile(name string) (*Checkpoint, error) {
	var (
		f   *os.File
		fi  os.FileInfo
		err error
	)
	if name == CheckpointFile {
		f, fi, err = d.openCheckpoint()
	} else {
		f, fi, err = d.openRegular(name)
	}
	if err != nil {
		return nil, err
	}
	info, err := checkpoint.Verify(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("session %s: %s: %w", d.id, f.Name(), err)
	}
	if info.Header.Generation == 0 || info.Header.NoPayload {
		f.Close()
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

// Save implements Session: it is Begin followed by Commit.
func (d *Dir) Save(ctx context.Context, payload io.Reader, opts ...SaveOption) (*Saved, error) {
	tx, err := d.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	return tx.Commit(ctx, payload)
}

// currentForUpdate reads the current checkpoint under the lock. With
// KeepPayload it also verifies it and returns it open, positioned on its
// payload.
func (d *Dir) currentForUpdate(c *SaveConfig) (*checkpoint.Header, io.ReadCloser, error) {
	if !c.KeepPayload {
		h, _, err := d.current()
		return h, nil, err
	}
	cp, err := d.loadFile(CheckpointFile)
	switch {
	case errors.Is(err, ErrNoCheckpoint):
		// Generation 0 has no payload to keep, but has metadata.
		h, _, err := d.current()
		return h, nil, err
	case err != nil:
		return nil, nil, err
	}
	return cp.Header, cp, nil
}

// rotate keeps the checkpoint being replaced as history, hard-linked as
// session.<generation>, and removes generations that fall out of the last
// keep. It runs before the rename, so that at every moment an intact
// checkpoint is on disk under its final name.
func (d *Dir) rotate(prev *checkpoint.Header, newGen uint64, keep int) error {
	if keep <= 0 {
		keep = DefaultKeep
	}
	if keep > 1 && prev != nil && prev.Generation > 0 {
		name := d.file(historyName(prev.Generation))
		err := d.fs.Link(d.file(CheckpointFile), name)
		if errors.Is(err, fs.ErrExist) && sameName(d.file(CheckpointFile), name) {
			// Left by a save that failed after this step: the same file.
			err = nil
		}
		if err != nil {
			return fmt.Errorf("session %s: keep generation %d: %w", d.id, prev.Generation, err)
		}
	}
	gens, err := d.historyGenerations()
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g+uint64(keep) <= newGen {
			if err := d.fs.Remove(d.file(historyName(g))); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("session %s: drop generation %d: %w", d.id, g, err)
			}
		}
	}
	return nil
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
		return nil, d.sweepOrphans()
	case errors.Is(err, syscall.ELOOP):
		if err := os.Remove(next); err != nil {
			return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
		}
		return &Lock{Stale: true, Reason: "session.next was a symbolic link, not a writer's file"}, nil
	case err != nil:
		return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
	}
	defer f.Close()
	l, err := judgeLock(f, probeFlock(f, unix.LOCK_EX), d.now())
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
	return l, errors.Join(d.sweepOrphans(), d.fs.SyncDir(d.path))
}

// Remove implements Session. Unless forced it holds the session's lock
// while it checks and removes. The directory is first renamed to a hidden
// trash name in the repository, atomically, then deleted.
func (d *Dir) Remove(ctx context.Context, force bool, opts ...RemoveOption) error {
	c := NewRemoveConfig(opts)
	if err := d.check(); err != nil {
		return err
	}
	if !force {
		w, err := d.lockForRemove(ctx)
		if err != nil {
			return err
		}
		// After the rename below session.next is gone with the directory,
		// and abort only closes the file.
		defer w.abort()
	}
	if c.IfGeneration != nil {
		h, _, err := d.current()
		if err != nil {
			return err
		}
		var gen uint64
		if h != nil {
			gen = h.Generation
		}
		if gen != *c.IfGeneration {
			return fmt.Errorf("session %s: %w: expected generation %d, the current one is %d", d.id, ErrConflict, *c.IfGeneration, gen)
		}
	}
	trash := filepath.Join(filepath.Dir(d.path), TrashPrefix+d.id+"-"+randomHex())
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

// lockForRemove takes the session's lock for Remove, breaking a stale one: a
// session whose writer is gone can be removed.
func (d *Dir) lockForRemove(ctx context.Context) (*writer, error) {
	h := &checkpoint.Header{Saved: d.now().UTC(), Owner: CurrentOwner("ckpt remove", d.now())}
	for attempt := 0; ; attempt++ {
		w, err := d.lock(h)
		var le *LockedError
		if !errors.As(err, &le) || !le.Stale || attempt == 3 {
			return w, err
		}
		if _, err := d.BreakLock(ctx, false); err != nil {
			return nil, err
		}
	}
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}
