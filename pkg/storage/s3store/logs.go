package s3store

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MaxLogSize bounds what a log sink holds in memory. The protocol caps logs
// well below it (storage keeps the head and tail of a step's output); this
// is the backend's own bound, in case a caller does not.
const MaxLogSize = 16 << 20

// CreateLog implements storage.Backend. An object cannot be appended to, so
// the sink holds the log in memory, at most MaxLogSize bytes (what comes
// after is counted and left out, and a last line says so), and Close
// writes it as the object name with one PutObject, replacing an older one.
// The log of a process that dies before Close is lost.
func (b *Backend) CreateLog(ctx context.Context, name string) (io.WriteCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	return &logSink{b: b, ctx: context.WithoutCancel(ctx), name: name}, nil
}

// OpenLog implements storage.Backend with one GetObject; the body is read
// as it comes.
func (b *Backend) OpenLog(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	out, err := b.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.st.bucket, Key: b.key(name)})
	switch {
	case isNotFound(err):
		return nil, b.notExist(name)
	case err != nil:
		return nil, b.reqErr("get", name, err)
	}
	return out.Body, nil
}

// logSink is CreateLog's writer.
type logSink struct {
	b       *Backend
	ctx     context.Context // for Close: values only, never done
	name    string
	buf     bytes.Buffer
	omitted int64
	closed  bool
}

func (w *logSink) Write(p []byte) (int, error) {
	if w.closed {
		return 0, fmt.Errorf("write to the closed log %s", w.b.where(w.name))
	}
	k := min(len(p), MaxLogSize-w.buf.Len())
	w.buf.Write(p[:k])
	w.omitted += int64(len(p) - k)
	return len(p), nil
}

// logTimeout bounds Close's upload.
const logTimeout = 2 * time.Minute

// Close writes the log object; a second call does nothing.
func (w *logSink) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	if w.omitted > 0 {
		fmt.Fprintf(&w.buf, "\n[ckpt: %d more bytes of output left out: an S3 log holds at most %d]\n", w.omitted, MaxLogSize)
	}
	ctx, cancel := context.WithTimeout(w.ctx, logTimeout)
	defer cancel()
	_, err := w.b.st.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &w.b.st.bucket,
		Key:           w.b.key(w.name),
		Body:          bytes.NewReader(w.buf.Bytes()),
		ContentLength: aws.Int64(int64(w.buf.Len())),
		ContentType:   aws.String("text/plain; charset=utf-8"),
	})
	w.buf = bytes.Buffer{}
	return w.b.reqErr("put", w.name, err)
}
