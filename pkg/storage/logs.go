package storage

import (
	"errors"
	"fmt"
	"io"
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

// newLogWriter caps what is written to sink at limit bytes
// (DefaultLogLimit if limit <= 0): its head and its tail.
func newLogWriter(sink io.WriteCloser, limit int64) io.WriteCloser {
	if limit <= 0 {
		limit = DefaultLogLimit
	}
	tail := int(limit / 4)
	return &logWriter{f: sink, head: limit - int64(tail), tailCap: tail}
}
