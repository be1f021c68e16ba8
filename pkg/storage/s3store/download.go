package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// object is an object downloaded whole by Open: in memory if it is small,
// else in an unlinked temporary file, which goes when it is closed.
type object struct {
	io.ReaderAt
	f    *os.File // nil when in memory
	size int64
	name string
}

func (o *object) Size() int64  { return o.size }
func (o *object) Name() string { return o.name }

func (o *object) Close() error {
	if o.f == nil {
		return nil
	}
	// ReadAt on the closed file fails from now on.
	f := o.f
	o.f = nil
	return f.Close()
}

// memLimit is the largest object Open keeps in memory.
const memLimit = 1 << 20

// downloadAttempts bounds the downloads of one object whose body is cut
// short: the SDK retries a request that fails, not a body that breaks off.
const downloadAttempts = 3

// Open implements storage.Backend: it downloads object name once, whole,
// and returns it as it was: up to 1 MiB in memory, larger objects spooled to
// an unlinked file in Options.TempDir, so that memory stays bounded. A
// transfer that breaks off is tried again; one that keeps breaking off is
// an error wrapping ErrUnavailable, never a short object.
func (b *Backend) Open(ctx context.Context, name string) (storage.Object, error) {
	return b.open(ctx, name, nil)
}

// OpenInto implements storage.Spooler: Open, downloading into f whatever
// the object's size. Closing the object leaves f open.
func (b *Backend) OpenInto(ctx context.Context, name string, f *os.File) (storage.Object, error) {
	return b.open(ctx, name, f)
}

var _ storage.Spooler = (*Backend)(nil)

func (b *Backend) open(ctx context.Context, name string, into *os.File) (storage.Object, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		o, err := b.download(ctx, name, into)
		if err == nil {
			return o, nil
		}
		if !errors.As(err, new(*transferError)) || attempt == downloadAttempts || ctx.Err() != nil {
			return nil, err
		}
	}
}

func (b *Backend) download(ctx context.Context, name string, into *os.File) (_ *object, err error) {
	out, err := b.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.st.bucket, Key: b.key(name)})
	switch {
	case isNotFound(err):
		return nil, b.notExist(name)
	case err != nil:
		return nil, b.reqErr("get", name, err)
	}
	defer out.Body.Close()
	size := aws.ToInt64(out.ContentLength)
	body := &bodyReader{r: out.Body, want: size, known: out.ContentLength != nil, progress: storage.DownloadProgress(ctx)}
	o := &object{name: b.where(name)}

	if into != nil {
		if _, err := into.Seek(0, io.SeekStart); err != nil {
			return nil, fmt.Errorf("spool %s: %w", o.name, err)
		}
		if err := into.Truncate(0); err != nil {
			return nil, fmt.Errorf("spool %s: %w", o.name, err)
		}
		n, err := io.CopyBuffer(struct{ io.Writer }{into}, body, make([]byte, 256<<10))
		if err != nil {
			if errors.As(err, new(*transferError)) {
				return nil, fmt.Errorf("get %s: %w", o.name, err)
			}
			return nil, fmt.Errorf("spool %s: %w", o.name, err)
		}
		o.ReaderAt, o.size = into, n
		return o, nil
	}
	if body.known && size <= memLimit {
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, fmt.Errorf("get %s: %w", o.name, err)
		}
		o.ReaderAt, o.size = bytes.NewReader(buf), size
		return o, nil
	}
	f, err := b.st.tempFile()
	if err != nil {
		return nil, fmt.Errorf("spool %s: %w", o.name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	// The struct hides f's ReaderFrom, which would read in larger pieces
	// than the buffer.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, body, make([]byte, 256<<10))
	if err != nil {
		if errors.As(err, new(*transferError)) {
			return nil, fmt.Errorf("get %s: %w", o.name, err)
		}
		return nil, fmt.Errorf("spool %s: %w", o.name, err)
	}
	o.ReaderAt, o.f, o.size = f, f, n
	return o, nil
}

// transferError is a response body that broke off or could not be read.
// It never unwraps to io.ErrUnexpectedEOF, which the checkpoint reader
// would take for a truncated checkpoint.
type transferError struct {
	read, want int64
	err        error
}

func (e *transferError) Error() string {
	if e.err == nil || errors.Is(e.err, io.EOF) {
		return fmt.Sprintf("the transfer broke off after %d of %d bytes", e.read, e.want)
	}
	return fmt.Sprintf("the transfer broke off after %d bytes: %v", e.read, e.err)
}

// Is makes a transfer that broke off an ErrUnavailable.
func (e *transferError) Is(target error) bool { return target == ErrUnavailable }

func (e *transferError) Unwrap() error {
	if errors.Is(e.err, io.ErrUnexpectedEOF) || errors.Is(e.err, io.EOF) {
		return nil
	}
	return e.err
}

// bodyReader reports a body shorter than its Content-Length, or failing to
// read, as a *transferError.
type bodyReader struct {
	r     io.Reader
	n     int64
	want  int64
	known bool
	// progress, when set, is told how much was read, of want when known.
	progress func(done, total int64)
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.progress != nil && n > 0 {
		total := b.want
		if !b.known {
			total = -1
		}
		b.progress(b.n, total)
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && (!b.known || b.n == b.want):
		err = io.EOF
	default:
		err = &transferError{read: b.n, want: b.want, err: err}
	}
	return n, err
}
