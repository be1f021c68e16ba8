package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// logTimeout bounds the requests of OpenLog's Close and of ReadLog, which
// take no context.
const logTimeout = 2 * time.Minute

// logWriter keeps a step's output, at most limit bytes, as storage.Dir's
// log does: the first three quarters as they come, then the last quarter,
// after a line saying how much was left out. An object cannot be appended
// to, so it is all held in memory (at most limit bytes) and written as
// logs/NAME.log by Close.
type logWriter struct {
	s       *Session
	name    string
	head    []byte
	headCap int64
	tail    []byte
	tailCap int
	omitted int64
	closed  bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("session %s: write to a closed log", w.s.id)
	}
	n := len(p)
	if k := min(int64(len(p)), w.headCap-int64(len(w.head))); k > 0 {
		w.head = append(w.head, p[:k]...)
		p = p[k:]
	}
	if len(p) > 0 {
		w.tail = append(w.tail, p...)
		if over := len(w.tail) - w.tailCap; over > 0 {
			w.omitted += int64(over)
			w.tail = append(w.tail[:0], w.tail[over:]...)
		}
	}
	return n, nil
}

// Close writes the log object.
func (w *logWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var b bytes.Buffer
	b.Write(w.head)
	if w.omitted > 0 {
		fmt.Fprintf(&b, "\n[ckpt: %d bytes of output left out here; the log keeps its first and last bytes]\n", w.omitted)
	}
	b.Write(w.tail)
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	_, err := w.s.st.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &w.s.st.bucket,
		Key:           aws.String(w.s.key(logName(w.name))),
		Body:          bytes.NewReader(b.Bytes()),
		ContentLength: aws.Int64(int64(b.Len())),
		ContentType:   aws.String("text/plain; charset=utf-8"),
	})
	if err != nil {
		return w.s.reqErr("put", logName(w.name), err)
	}
	return nil
}

func logName(step string) string { return LogPrefix + step + ".log" }

func validStep(name string) error {
	if !checkpoint.ValidName(name) {
		return fmt.Errorf("invalid step name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", name, checkpoint.MaxNameLen)
	}
	return nil
}

// OpenLog implements storage.Session: it returns a writer that keeps at
// most limit bytes (storage.DefaultLogLimit if limit <= 0) and writes them
// as the object logs/NAME.log when it is closed. Unlike a local log, the
// output of a process that dies before Close is lost.
func (s *Session) OpenLog(name string, limit int64) (io.WriteCloser, error) {
	if err := validStep(name); err != nil {
		return nil, s.errorf("%w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	defer cancel()
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = storage.DefaultLogLimit
	}
	tail := int(limit / 4)
	return &logWriter{s: s, name: name, headCap: limit - int64(tail), tailCap: tail}, nil
}

// ReadLog implements storage.Session.
func (s *Session) ReadLog(name string) (io.ReadCloser, error) {
	if err := validStep(name); err != nil {
		return nil, s.errorf("%w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), logTimeout)
	out, err := s.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(logName(name)))})
	if isNotFound(err) {
		defer cancel()
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("step %s: %w", name, storage.ErrNoLog)
	}
	if err != nil {
		cancel()
		return nil, s.reqErr("get", logName(name), err)
	}
	return &cancelCloser{ReadCloser: out.Body, cancel: cancel}, nil
}

// cancelCloser releases a request's context when its body is closed.
type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelCloser) Close() error {
	defer c.cancel()
	return c.ReadCloser.Close()
}
