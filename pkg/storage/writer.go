package storage

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Buffers are pooled: a save of a small checkpoint would otherwise spend
// more time allocating and clearing them than in its system calls.
var (
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 64<<10) }}
	copyPool   = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}
)

// writer is one save in progress: it holds the session's lock from lock
// until commit or abort.
type writer struct {
	d    *Dir
	f    file
	next string // session.next
	tmp  string // the name f was created under, until it is linked
	bw   *bufio.Writer
	cw   *checkpoint.Writer
}

// lock takes the session's lock for a checkpoint with header h. It creates a
// private temporary file, takes its flock, writes h (which names the owner)
// and links the file to session.next. link(2), like O_EXCL, fails if
// session.next exists, so only one writer holds it; unlike a plain O_EXCL
// create, it makes session.next appear with its owner and flock already in
// place, so that nobody ever sees a lock file that cannot be judged.
func (d *Dir) lock(h *checkpoint.Header) (_ *writer, err error) {
	w := &writer{d: d, next: d.file(NextFile), tmp: d.file(TempPrefix + NextFile + "-" + randomHex())}
	w.f, err = d.fs.CreateExcl(w.tmp, filePerm)
	if err != nil {
		if cerr := d.check(); cerr != nil {
			return nil, cerr
		}
		return nil, fmt.Errorf("session %s: create lock file: %w", d.id, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, w.abort())
		}
	}()
	// Nobody else knows this file yet: the flock is ours at once.
	if err := unix.Flock(int(w.f.OS().Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("session %s: flock lock file: %w", d.id, err)
	}
	w.bw = writerPool.Get().(*bufio.Writer)
	w.bw.Reset(w.f)
	if w.cw, err = checkpoint.NewWriter(w.bw, h); err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	if err := w.bw.Flush(); err != nil {
		return nil, fmt.Errorf("session %s: write lock file: %w", d.id, err)
	}
	if err := d.fs.Link(w.tmp, w.next); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, d.lockedError()
		}
		return nil, fmt.Errorf("session %s: link %s: %w", d.id, NextFile, err)
	}
	if err := d.fs.Remove(w.tmp); err != nil {
		return nil, fmt.Errorf("session %s: remove lock temp file: %w", d.id, err)
	}
	w.tmp = ""
	return w, nil
}

// write streams the payload from r, then the trailer, and fsyncs.
func (w *writer) write(ctx context.Context, r io.Reader, allowEmpty bool) (int64, error) {
	id := w.d.id
	if r != nil {
		buf := copyPool.Get().(*[]byte)
		defer copyPool.Put(buf)
		// The struct hides r's WriterTo, so that the copy goes through buf.
		if _, err := io.CopyBuffer(w.cw, struct{ io.Reader }{ctxReader{ctx, r}}, *buf); err != nil {
			return 0, fmt.Errorf("session %s: write %s: %w", id, NextFile, err)
		}
	}
	if w.cw.Size() == 0 && !allowEmpty {
		return 0, fmt.Errorf("session %s: %w", id, ErrEmpty)
	}
	if err := w.cw.Close(); err != nil {
		return 0, fmt.Errorf("session %s: write %s: %w", id, NextFile, err)
	}
	if err := w.bw.Flush(); err != nil {
		return 0, fmt.Errorf("session %s: write %s: %w", id, NextFile, err)
	}
	if err := w.f.Sync(); err != nil {
		return 0, fmt.Errorf("session %s: sync %s: %w", id, NextFile, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return w.cw.Size(), nil
}

// commit renames session.next over session, fsyncs the directory and lets
// go of the lock. It refuses to rename a session.next that is no longer the
// writer's own: its lock was broken, and another writer may have saved since.
func (w *writer) commit() error {
	id := w.d.id
	if err := w.stillOurs(); err != nil {
		return err
	}
	if err := w.d.fs.Rename(w.next, w.d.file(CheckpointFile)); err != nil {
		return fmt.Errorf("session %s: rename %s: %w", id, NextFile, err)
	}
	w.next = "" // renamed: nothing for abort to remove
	w.release()
	if err := w.d.fs.SyncDir(w.d.path); err != nil {
		return fmt.Errorf("session %s: the checkpoint was renamed into place but may not survive a crash: sync directory: %w", id, err)
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("session %s: the checkpoint was saved, but closing it failed: %w", id, err)
	}
	return nil
}

// stillOurs fails with a Lost *LockedError if session.next is no longer the
// writer's own file: its lock was broken.
func (w *writer) stillOurs() error {
	if !sameFile(w.f.OS(), w.next) {
		return &LockedError{Session: w.d.id, Lost: true, Lock: Lock{Reason: "this writer's lock was broken while it was saving; nothing was saved"}}
	}
	return nil
}

// release returns the write buffer to its pool; the writer writes no more.
func (w *writer) release() {
	if w.bw != nil {
		w.bw.Reset(nil)
		writerPool.Put(w.bw)
		w.bw = nil
	}
}

// abort removes what the writer created, if it is still its own, and closes
// its file, which releases the lock.
func (w *writer) abort() error {
	var errs []error
	for _, name := range []string{w.tmp, w.next} {
		if name == "" || !sameFile(w.f.OS(), name) {
			continue
		}
		if err := w.d.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", name, err))
		}
	}
	w.release()
	if err := w.f.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
