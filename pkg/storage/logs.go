package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// DefaultLogLimit is the size a step log is capped at.
const DefaultLogLimit = 1 << 20

// logWriter writes a step's output to its log, at most limit bytes:
// the first three quarters are written as they come, so that a crash keeps
// them; past that, the last quarter is held in memory and written by Close
// after a line saying how much was left out.
type logWriter struct {
	f       io.WriteCloser
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

func validStep(name string) error {
	if !checkpoint.ValidName(name) {
		return fmt.Errorf("invalid step name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", name, checkpoint.MaxNameLen)
	}
	return nil
}

// OpenLog creates the log of step name, replacing an older one, capped at
// limit bytes (DefaultLogLimit if limit <= 0): its head and its tail.
func (s *Session) OpenLog(ctx context.Context, name string, limit int64) (io.WriteCloser, error) {
	if err := validStep(name); err != nil {
		return nil, s.errorf("%w", err)
	}
	sink, err := s.b.CreateLog(ctx, name)
	if err != nil {
		return nil, s.errorf("open log: %w", err)
	}
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	tail := int(limit / 4)
	return &logWriter{f: sink, head: limit - int64(tail), tailCap: tail}, nil
}

// ReadLog opens the log of step name; ErrNoLog if there is none.
func (s *Session) ReadLog(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := validStep(name); err != nil {
		return nil, s.errorf("%w", err)
	}
	r, err := s.b.OpenLog(ctx, name)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.b.Check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("step %s: %w", name, ErrNoLog)
	}
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	return r, nil
}
