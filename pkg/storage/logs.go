package storage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// DefaultLogLimit is the size a step log is capped at.
const DefaultLogLimit = 1 << 20

// logWriter writes a step's output to logs/NAME.log, at most limit bytes:
// the first three quarters are written as they come, so that a crash keeps
// them; past that, the last quarter is held in memory and written by Close
// after a line saying how much was left out.
type logWriter struct {
	f       *os.File
	head    int64 // bytes still to write through
	tail    []byte
	tailCap int
	omitted int64
}

func (w *logWriter) Write(p []byte) (int, error) {
	n := len(p)
	if w.head > 0 {
		k := min(int64(len(p)), w.head)
		if _, err := w.f.Write(p[:k]); err != nil {
			return 0, err
		}
		w.head -= k
		p = p[k:]
	}
	if len(p) > 0 {
		w.tail = append(w.tail, p...)
		if over := len(w.tail) - w.tailCap; over > 0 {
			w.omitted += int64(over)
			w.tail = w.tail[over:]
		}
	}
	return n, nil
}

func (w *logWriter) Close() error {
	var err error
	if w.omitted > 0 {
		_, err = fmt.Fprintf(w.f, "\n[ckpt: %d bytes of output left out here; the log keeps its first and last bytes]\n", w.omitted)
	}
	if err == nil && len(w.tail) > 0 {
		_, err = w.f.Write(w.tail)
	}
	return errors.Join(err, w.f.Close())
}

func (d *Dir) logPath(name string) (string, error) {
	if !checkpoint.ValidName(name) {
		return "", fmt.Errorf("invalid step name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", name, checkpoint.MaxNameLen)
	}
	return filepath.Join(d.path, LogDir, name+".log"), nil
}

// OpenLog implements Session: it creates or truncates the log of step name,
// capped at limit bytes (DefaultLogLimit if limit <= 0).
func (d *Dir) OpenLog(name string, limit int64) (io.WriteCloser, error) {
	path, err := d.logPath(name)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	if err := os.Mkdir(dir, dirPerm); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	switch fi, err := os.Lstat(dir); {
	case err != nil:
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return nil, fmt.Errorf("session %s: %w: %s is a symbolic link", d.id, ErrSymlink, dir)
	case !fi.IsDir():
		return nil, fmt.Errorf("session %s: %s is not a directory", d.id, dir)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, filePerm)
	if err != nil {
		return nil, fmt.Errorf("session %s: open log: %w", d.id, err)
	}
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	tail := int(limit / 4)
	return &logWriter{f: f, head: limit - int64(tail), tailCap: tail}, nil
}

// ReadLog implements Session.
func (d *Dir) ReadLog(name string) (io.ReadCloser, error) {
	path, err := d.logPath(name)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if err := d.check(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("session %s: step %s: %w", d.id, name, ErrNoLog)
	}
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	return f, nil
}
