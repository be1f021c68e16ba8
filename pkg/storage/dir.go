package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// TempPrefix starts the name of a file a local writer prepares before it
// gives it its final name. One left behind is an orphan of a crashed
// writer, harmless, swept by gc.
const TempPrefix = ".tmp-"

// TrashPrefix starts the name a session directory is renamed to while it is
// being removed, so that listings never see a half-removed session.
const TrashPrefix = ".trash-"

const (
	dirPerm  = 0o700
	filePerm = 0o600
)

// copyPool holds the buffers payloads are copied through: a save of a small
// checkpoint would otherwise spend more time allocating them than in its
// system calls.
var copyPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// Dir is the local Backend: a session directory on a POSIX file system. Its
// lock is the file session.next, which a writer prepares privately (create,
// flock, owner record) and link(2)s into place, so that session.next never
// exists without its owner and its flock; a free flock proves a lock stale.
// Commit writes the manifest to a private temporary file, fsyncs it and
// renames it over session, then fsyncs the directory. A Dir holds no open
// files and is safe for concurrent use.
type Dir struct {
	id   string
	path string
	now  func() time.Time
	fs   fileSystem
}

var (
	_ Backend = (*Dir)(nil)
	_ Auditor = (*Dir)(nil)
)

// OpenDir returns the local backend of the session directory at path. It
// fails with ErrNotFound if there is none, and with ErrSymlink if path is a
// symbolic link.
func OpenDir(path string) (*Dir, error) {
	d := &Dir{id: filepath.Base(path), path: path, now: time.Now, fs: osFS{}}
	if err := d.Check(context.Background()); err != nil {
		return nil, err
	}
	return d, nil
}

// Open returns the session in the directory at path; see OpenDir.
func Open(path string) (*Session, error) {
	d, err := OpenDir(path)
	if err != nil {
		return nil, err
	}
	return New(d), nil
}

// ID implements Backend: the directory's base name.
func (d *Dir) ID() string { return d.id }

// Location implements Backend: the directory's path.
func (d *Dir) Location() string { return d.path }

// Path returns the directory's path.
func (d *Dir) Path() string { return d.path }

func (d *Dir) file(name string) string { return filepath.Join(d.path, name) }

// Check implements Backend.
func (d *Dir) Check(context.Context) error {
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

// openRegular opens a file for reading without following a symbolic link or
// blocking on a planted FIFO, and checks that it is a regular file.
func openRegular(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, syscall.ELOOP):
		return nil, nil, fmt.Errorf("%w: %s is a symbolic link", ErrSymlink, path)
	case err != nil:
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func objectInfo(name string, fi os.FileInfo) ObjectInfo {
	info := ObjectInfo{Name: name, Size: fi.Size(), Modified: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.Version = fmt.Sprintf("%d:%d:%d:%d", st.Dev, st.Ino, fi.Size(), fi.ModTime().UnixNano())
	}
	return info
}

// ReadHead implements Backend.
func (d *Dir) ReadHead(_ context.Context, name string, n int64) ([]byte, ObjectInfo, error) {
	f, fi, err := openRegular(d.file(name))
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer f.Close()
	b := make([]byte, min(n, fi.Size()))
	k, err := f.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, ObjectInfo{}, err
	}
	return b[:k], objectInfo(name, fi), nil
}

// dirObject is an open file: it stays readable, unchanged, when a writer
// replaces or removes its name, since files are never changed in place.
type dirObject struct {
	*os.File
	size int64
}

func (o dirObject) Size() int64 { return o.size }

// Open implements Backend.
func (d *Dir) Open(_ context.Context, name string) (Object, error) {
	f, fi, err := openRegular(d.file(name))
	if err != nil {
		return nil, err
	}
	return dirObject{f, fi.Size()}, nil
}

// createTemp creates a private temporary file in the session directory.
func (d *Dir) createTemp(kind string) (file, string, error) {
	name := d.file(TempPrefix + kind + "-" + randomHex(6))
	f, err := d.fs.CreateExcl(name, filePerm)
	if err != nil {
		if cerr := d.Check(context.Background()); cerr != nil {
			return nil, "", cerr
		}
		return nil, "", err
	}
	return f, name, nil
}

// writeTemp writes r into a new temporary file and fsyncs it.
func (d *Dir) writeTemp(ctx context.Context, kind string, r io.Reader) (string, int64, error) {
	f, tmp, err := d.createTemp(kind)
	if err != nil {
		return "", 0, err
	}
	buf := copyPool.Get().(*[]byte)
	defer copyPool.Put(buf)
	// The struct hides r's WriterTo, so that the copy goes through buf.
	n, err := io.CopyBuffer(f, struct{ io.Reader }{r}, *buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", 0, errors.Join(err, d.removeQuiet(tmp))
	}
	return tmp, n, nil
}

func (d *Dir) removeQuiet(path string) error {
	if err := d.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Create implements Backend: a temporary file, written and fsynced, then
// linked to name, which fails if name exists.
func (d *Dir) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	sub, err := d.parents(name)
	if err != nil {
		return 0, err
	}
	tmp, n, err := d.writeTemp(ctx, "create", r)
	if err != nil {
		return 0, err
	}
	defer d.removeQuiet(tmp)
	if err := d.fs.Link(tmp, d.file(name)); err != nil {
		return 0, err
	}
	return n, d.syncSub(sub)
}

// parents makes the directories of a name with "/" (steps/NAME/1.start),
// refusing a symbolic link or anything but a directory where one is
// expected, and returns the innermost one; "" for a name without "/".
// A directory it makes is fsynced into its parent.
func (d *Dir) parents(name string) (string, error) {
	if err := validObjectName(name); err != nil {
		return "", err
	}
	segs := strings.Split(name, "/")
	dir := d.path
	for _, seg := range segs[:len(segs)-1] {
		parent := dir
		dir = filepath.Join(dir, seg)
		err := os.Mkdir(dir, dirPerm)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			if cerr := d.Check(context.Background()); cerr != nil {
				return "", cerr
			}
			return "", err
		}
		switch fi, lerr := os.Lstat(dir); {
		case lerr != nil:
			return "", lerr
		case fi.Mode()&fs.ModeSymlink != 0:
			return "", fmt.Errorf("%w: %s is a symbolic link", ErrSymlink, dir)
		case !fi.IsDir():
			return "", fmt.Errorf("%s is not a directory", dir)
		}
		if err == nil {
			if err := d.fs.SyncDir(parent); err != nil {
				return "", err
			}
		}
	}
	if dir == d.path {
		return "", nil
	}
	return dir, nil
}

// validObjectName refuses a name with an empty, "." or ".." segment.
func validObjectName(name string) error {
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid object name %q", name)
		}
	}
	return nil
}

// syncSub fsyncs a subdirectory an object was linked or renamed into; the
// session directory itself is synced by Commit.
func (d *Dir) syncSub(sub string) error {
	if sub == "" {
		return nil
	}
	return d.fs.SyncDir(sub)
}

// Put implements Backend: a temporary file, written and fsynced, then
// renamed over name (a symbolic link planted there is replaced, not
// followed).
func (d *Dir) Put(ctx context.Context, name string, data []byte) error {
	sub, err := d.parents(name)
	if err != nil {
		return err
	}
	tmp, _, err := d.writeTemp(ctx, "put", strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	if err := d.fs.Rename(tmp, d.file(name)); err != nil {
		return errors.Join(err, d.removeQuiet(tmp))
	}
	return d.syncSub(sub)
}

// Copy implements Backend with a hard link, made under a temporary name and
// renamed over dst.
func (d *Dir) Copy(_ context.Context, src, dst string) error {
	tmp := d.file(TempPrefix + "copy-" + randomHex(6))
	if err := d.fs.Link(d.file(src), tmp); err != nil {
		return err
	}
	if err := d.fs.Rename(tmp, d.file(dst)); err != nil {
		return errors.Join(err, d.removeQuiet(tmp))
	}
	return nil
}

// Commit implements Backend: the manifest is written to a private
// temporary file and fsynced; if the lock is still this writer's and
// session is still the base, the file is renamed over session and the
// directory fsynced. Renaming only its own file, a writer whose lock was
// broken can never make another writer's unfinished file current.
func (d *Dir) Commit(ctx context.Context, held Held, base string, data []byte) (err error) {
	tmp, _, err := d.writeTemp(ctx, "session", strings.NewReader(string(data)))
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.removeQuiet(tmp))
		}
	}()
	// The checks and the rename happen under the directory's flock, which
	// BreakLock takes too: a lock cannot be broken between them.
	unlock, err := d.lockDir()
	if err != nil {
		return err
	}
	defer unlock()
	if err := held.Check(ctx); err != nil {
		return err
	}
	var now string
	if fi, err := os.Lstat(d.file(CheckpointFile)); err == nil {
		now = objectInfo(CheckpointFile, fi).Version
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if now != base {
		return fmt.Errorf("%w: %s changed under the lock", ErrConflict, CheckpointFile)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.fs.Rename(tmp, d.file(CheckpointFile)); err != nil {
		return fmt.Errorf("rename manifest: %w", err)
	}
	if err := d.fs.SyncDir(d.path); err != nil {
		return fmt.Errorf("the manifest was renamed into place but may not survive a crash: sync directory: %w", err)
	}
	return nil
}

// lockDir takes an exclusive flock on the session directory, which orders
// a commit's last checks and rename against BreakLock, and returns the
// function that lets go of it.
func (d *Dir) lockDir() (func(), error) {
	f, err := os.OpenFile(d.path, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil && !errors.Is(err, unix.ENOLCK) && !errors.Is(err, unix.EOPNOTSUPP) {
		f.Close()
		return nil, fmt.Errorf("session %s: lock directory: %w", d.id, err)
	}
	return func() { f.Close() }, nil
}

// List implements Backend: the session directory's entries, temporary
// files and the directories of steps and logs excepted.
func (d *Dir) List(context.Context) ([]ObjectInfo, error) {
	des, err := os.ReadDir(d.path)
	if err != nil {
		if cerr := d.Check(context.Background()); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	out := make([]ObjectInfo, 0, len(des))
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, TempPrefix) || name == LogDir || name == StepDir {
			continue
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, objectInfo(name, fi))
	}
	return out, nil
}

// Delete implements Backend.
func (d *Dir) Delete(_ context.Context, names ...string) error {
	var errs []error
	for _, name := range names {
		if err := d.removeQuiet(d.file(name)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Destroy implements Backend: the directory is first renamed to a hidden
// trash name in the repository, atomically, then deleted.
func (d *Dir) Destroy(context.Context) error {
	trash := filepath.Join(filepath.Dir(d.path), TrashPrefix+d.id+"-"+randomHex(6))
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

// ListUnder implements Backend: a walk of the subdirectory dir that does
// not follow symbolic links; temporary files are left out.
func (d *Dir) ListUnder(_ context.Context, dir string) ([]ObjectInfo, error) {
	if err := validObjectName(dir); err != nil {
		return nil, err
	}
	if err := d.Check(context.Background()); err != nil {
		return nil, err
	}
	var out []ObjectInfo
	root := d.file(dir)
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case de.IsDir() || strings.HasPrefix(de.Name(), TempPrefix):
			return nil
		}
		fi, err := de.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(d.path, path)
		out = append(out, objectInfo(filepath.ToSlash(rel), fi))
		return nil
	})
	return out, err
}

// CreateLog implements Backend: a new file, renamed over name at once, so
// that a hard link, FIFO or symbolic link planted there is replaced, never
// written through or blocked on. Its bytes are written as they come.
func (d *Dir) CreateLog(_ context.Context, name string) (io.WriteCloser, error) {
	if err := d.Check(context.Background()); err != nil {
		return nil, err
	}
	sub, err := d.parents(name)
	if err != nil {
		return nil, err
	}
	tmp := d.file(TempPrefix + "log-" + randomHex(6))
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, filePerm)
	if err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, d.file(name)); err != nil {
		return nil, errors.Join(err, f.Close(), os.Remove(tmp))
	}
	return f, d.syncSub(sub)
}

// OpenLog implements Backend.
func (d *Dir) OpenLog(_ context.Context, name string) (io.ReadCloser, error) {
	if err := validObjectName(name); err != nil {
		return nil, err
	}
	f, _, err := openRegular(d.file(name))
	return f, err
}

// temps returns the temporary files of writers that are gone: no flock
// held, last changed before cutoff.
func (d *Dir) temps(cutoff time.Time) ([]string, error) {
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range des {
		path := d.file(de.Name())
		if !strings.HasPrefix(de.Name(), TempPrefix) {
			continue
		}
		// Only an old file's flock is probed: a writer takes the flock of
		// its new lock file at once (Lock), and must not find it probed.
		if fi, err := de.Info(); err == nil && fi.ModTime().Before(cutoff) && !lockHeld(path) {
			out = append(out, path)
		}
	}
	return out, nil
}

// SweepTemp implements Backend.
func (d *Dir) SweepTemp(_ context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	paths, err := d.temps(cutoff)
	if err != nil || dryRun {
		return paths, err
	}
	for _, p := range paths {
		if err := d.removeQuiet(p); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// Audit implements Auditor: orphaned temporary files, and permissions that
// let others in.
func (d *Dir) Audit(context.Context) ([]Problem, error) {
	var out []Problem
	temps, err := d.temps(d.now().Add(-CreateGrace))
	if err != nil {
		return nil, err
	}
	for _, p := range temps {
		out = append(out, Problem{Kind: ProblemOrphan, Path: p, Detail: "temporary file of a writer that is gone"})
	}
	if fi, err := os.Lstat(d.path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		out = append(out, Problem{Kind: ProblemPermissions, Path: d.path, Detail: fmt.Sprintf("mode %#o, want %#o", fi.Mode().Perm(), dirPerm)})
	}
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, err
	}
	for _, de := range des {
		fi, err := de.Info()
		if err == nil && fi.Mode().Type() == 0 && fi.Mode().Perm()&0o077 != 0 && !strings.HasPrefix(de.Name(), TempPrefix) {
			out = append(out, Problem{Kind: ProblemPermissions, Path: d.file(de.Name()), Detail: fmt.Sprintf("mode %#o, want %#o", fi.Mode().Perm(), filePerm)})
		}
	}
	return out, nil
}

// dirHeld is a lock of a Dir: its file (session.next, or a step's claim),
// open, with its flock held.
type dirHeld struct {
	d    *Dir
	path string
	f    file
	once sync.Once
}

// Lock implements Backend. It creates a private temporary file, takes its
// flock, writes the owner record and links the file to session.next.
// link(2), like O_EXCL, fails if session.next exists, so only one writer
// holds it; unlike a plain O_EXCL create, it makes session.next appear with
// its owner and flock already in place, so that nobody ever sees a lock
// file that cannot be judged.
func (d *Dir) Lock(ctx context.Context, name string, owner *checkpoint.Owner) (_ Held, err error) {
	if _, err := d.parents(name); err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	f, tmp, err := d.createTemp("lock")
	if err != nil {
		return nil, fmt.Errorf("session %s: create lock file: %w", d.id, err)
	}
	h := &dirHeld{d: d, path: d.file(name), f: f}
	defer func() {
		if err != nil {
			err = errors.Join(err, d.removeQuiet(tmp), h.Release(ctx))
		}
	}()
	// Nobody else knows this file yet: the flock is ours at once.
	if err := unix.Flock(int(f.OS().Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		return nil, fmt.Errorf("session %s: flock lock file: %w", d.id, err)
	}
	rec, err := checkpoint.EncodeManifest(&checkpoint.Header{Saved: owner.Started, Created: owner.Started, Owner: owner})
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	if _, err := f.Write(rec); err != nil {
		return nil, fmt.Errorf("session %s: write lock file: %w", d.id, err)
	}
	if err := d.fs.Link(tmp, h.path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil, d.lockedError(name)
		}
		return nil, fmt.Errorf("session %s: link %s: %w", d.id, name, err)
	}
	if err := d.fs.Remove(tmp); err != nil {
		return nil, fmt.Errorf("session %s: remove lock temp file: %w", d.id, err)
	}
	return h, nil
}

// Check implements Held.
func (h *dirHeld) Check(context.Context) error {
	if !sameFile(h.f.OS(), h.path) {
		return &LockedError{Session: h.d.id, Lost: true, Lock: Lock{Reason: "this writer's lock was broken while it was saving; nothing was saved"}}
	}
	return nil
}

// Release implements Held: it removes session.next if it is still this
// writer's, and closes the file, which lets go of the flock.
func (h *dirHeld) Release(context.Context) error {
	var err error
	h.once.Do(func() {
		next := h.path
		if sameFile(h.f.OS(), next) {
			err = h.d.removeQuiet(next)
		}
		if cerr := h.f.Close(); cerr != nil && !errors.Is(cerr, os.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	})
	return err
}

// InspectLock implements Backend.
func (d *Dir) InspectLock(_ context.Context, name string) (*Lock, error) {
	if err := validObjectName(name); err != nil {
		return nil, err
	}
	return inspectLock(d.file(name), d.now())
}

// BreakLock implements Backend. It holds the lock file's flock while it
// decides and removes, and removes only the file it judged.
func (d *Dir) BreakLock(ctx context.Context, name string, force bool) (*Lock, error) {
	if err := validObjectName(name); err != nil {
		return nil, err
	}
	next := d.file(name)
	f, err := os.OpenFile(next, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist) && name == NextFile:
		_, err := d.SweepTemp(ctx, d.now().Add(-CreateGrace), false)
		return nil, err
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, syscall.ELOOP):
		if err := os.Remove(next); err != nil {
			return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
		}
		return &Lock{Stale: true, Reason: name + " was a symbolic link, not a writer's file"}, nil
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
	unlock, err := d.lockDir()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !sameFile(f, next) {
		// Its writer finished or aborted while we looked: nothing to break.
		return nil, nil
	}
	if err := os.Remove(next); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("session %s: break lock: %w", d.id, err)
	}
	// The temporary files of writers that are gone go with the writer's
	// lock (a step's claim has none).
	if name == NextFile {
		_, err = d.SweepTemp(ctx, d.now().Add(-CreateGrace), false)
	}
	return l, errors.Join(err, d.fs.SyncDir(d.path))
}
