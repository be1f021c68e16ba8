package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// verified is a checkpoint object downloaded in full and verified, held in
// memory or in an unlinked temporary file.
type verified struct {
	info *checkpoint.Info
	etag string
	r    io.ReaderAt
	f    *os.File // nil when in memory
}

func (v *verified) payload() io.Reader {
	return io.NewSectionReader(v.r, v.info.PayloadOffset, v.info.PayloadSize)
}

func (v *verified) Close() error {
	if v.f != nil {
		return v.f.Close()
	}
	return nil
}

func (v *verified) checkpoint() *storage.Checkpoint {
	return &storage.Checkpoint{
		Header: v.info.Header,
		Size:   v.info.PayloadSize,
		ReadCloser: struct {
			io.Reader
			io.Closer
		}{v.payload(), v},
	}
}

// downloadAttempts bounds the downloads of one object whose body is cut
// short: the SDK retries a request that fails, not a body that breaks off.
const downloadAttempts = 3

// download fetches object name (with ifMatch, only that version of it) and
// verifies it. A missing object is an error wrapping fs.ErrNotExist, a
// damaged one a *checkpoint.CorruptError; a transfer that breaks off is
// tried again, and is never taken for a damaged checkpoint.
func (s *Session) download(ctx context.Context, name, ifMatch string) (*verified, error) {
	for attempt := 1; ; attempt++ {
		v, err := s.downloadOnce(ctx, name, ifMatch)
		var te *transferError
		if err == nil || !errors.As(err, &te) || attempt == downloadAttempts || ctx.Err() != nil {
			return v, err
		}
	}
}

func (s *Session) downloadOnce(ctx context.Context, name, ifMatch string) (_ *verified, err error) {
	in := &s3.GetObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(name))}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.st.client.GetObject(ctx, in)
	switch {
	case isNotFound(err):
		return nil, s.errorf("%s: %w", s.st.url(s.key(name)), fs.ErrNotExist)
	case err != nil:
		return nil, s.reqErr("get", name, err)
	}
	defer out.Body.Close()
	url := s.st.url(s.key(name))
	size := aws.ToInt64(out.ContentLength)
	body := &bodyReader{r: out.Body, want: size, known: out.ContentLength != nil}
	v := &verified{etag: aws.ToString(out.ETag)}

	if body.known && size <= s.st.o.PartSize {
		buf := make([]byte, size)
		if _, err := io.ReadFull(body, buf); err != nil {
			return nil, s.errorf("get %s: %w", url, err)
		}
		if v.info, err = checkpoint.Verify(bytes.NewReader(buf), size); err != nil {
			return nil, s.errorf("%s: %w", url, err)
		}
		v.r = bytes.NewReader(buf)
		return v, nil
	}

	// Too large for memory: spool to a temporary file, verifying on the way.
	f, err := s.st.tempFile()
	if err != nil {
		return nil, s.errorf("spool %s: %w", url, err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	sw := &countWriter{w: f}
	cr, err := checkpoint.NewReader(io.TeeReader(body, sw))
	if err == nil {
		_, err = io.CopyBuffer(io.Discard, cr, make([]byte, 256<<10))
	}
	var te *transferError
	switch {
	case errors.As(err, &te):
		return nil, s.errorf("get %s: %w", url, err)
	case err != nil:
		return nil, s.errorf("%s: %w", url, err)
	}
	v.f, v.r = f, f
	v.info = &checkpoint.Info{
		Header:        cr.Header(),
		PayloadSize:   cr.Size(),
		PayloadOffset: sw.n - cr.Size() - checkpoint.TrailerSize,
	}
	return v, nil
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
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF) && (!b.known || b.n == b.want):
		err = io.EOF
	default:
		err = &transferError{read: b.n, want: b.want, err: err}
	}
	return n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
