package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// This file reads format 1, whose payload is inline between the header and a
// trailer. ckpt no longer writes it; it reads it so that every checkpoint
// saved before format 2 stays loadable.

const (
	trailerMagic = "CKPTEND\n"
	trailerLen   = len(trailerMagic) + 8 + sha256.Size
)

// TrailerSize is the length of the trailer that follows a format-1 payload.
// A format-1 file of size S whose header ends at offset O (as ReadHeader
// returns it) holds a payload of S-O-TrailerSize bytes.
const TrailerSize = int64(trailerLen)

// Reader reads one format-1 checkpoint from an underlying io.Reader: the
// header at once, then the payload through Read. Read returns io.EOF only
// after the trailer has been checked; if the file is truncated, has trailing
// bytes or fails its checksum, the last Read returns a *CorruptError instead.
// Payload bytes handed out before that point are not yet verified: use Verify
// first where that matters.
type Reader struct {
	h   *Header
	off int64 // payload offset
	br  *bufio.Reader
	sum hash.Hash
	n   int64
	err error
}

const readBufSize = 256 << 10

// NewReader reads and checks the header at the start of r, which must be a
// format-1 file. For an intact format-2 manifest it returns ErrManifest.
func NewReader(r io.Reader) (*Reader, error) {
	h, raw, err := readHeader(r)
	if err != nil {
		return nil, err
	}
	if h.Format != 1 {
		return nil, ErrManifest
	}
	cr := &Reader{h: h, off: int64(len(raw)), br: bufio.NewReaderSize(r, readBufSize), sum: sha256.New()}
	cr.sum.Write(raw)
	return cr, nil
}

// Header returns the checkpoint's header.
func (r *Reader) Header() *Header { return r.h }

// Size returns the number of payload bytes read so far; after Read has
// returned io.EOF it is the payload length.
func (r *Reader) Size() int64 { return r.n }

// Read reads payload bytes. It holds back the last trailerLen bytes of the
// input, which are the trailer once the input ends.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if max := readBufSize - trailerLen; len(p) > max {
		p = p[:max]
	}
	buf, err := r.br.Peek(len(p) + trailerLen)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
		return 0, err
	}
	n := len(buf) - trailerLen
	if err == nil {
		n = len(p)
	}
	if n > 0 {
		copy(p, buf[:n])
		r.sum.Write(buf[:n])
		r.n += int64(n)
		_, _ = r.br.Discard(n)
		return n, nil
	}
	r.err = r.checkTrailer(buf)
	return 0, r.err
}

func (r *Reader) checkTrailer(t []byte) error {
	if len(t) < trailerLen {
		return corrupt("truncated: the trailer is missing")
	}
	if string(t[:len(trailerMagic)]) != trailerMagic {
		return corrupt("truncated or damaged: bad trailer")
	}
	lenEnd := len(trailerMagic) + 8
	if n := binary.BigEndian.Uint64(t[len(trailerMagic):lenEnd]); n != uint64(r.n) {
		return corrupt("payload length is %d, the trailer says %d", r.n, n)
	}
	r.sum.Write(t[:lenEnd])
	if !bytes.Equal(r.sum.Sum(nil), t[lenEnd:]) {
		return corrupt("checksum mismatch")
	}
	return io.EOF
}

// Info describes a verified format-1 checkpoint.
type Info struct {
	Header *Header
	// PayloadOffset and PayloadSize locate the payload within the file.
	PayloadOffset int64
	PayloadSize   int64
}

// Verify reads the whole format-1 checkpoint in r, size bytes long, and
// checks it. On success the payload is the section
// [PayloadOffset, PayloadOffset+PayloadSize) of r. For an intact format-2
// manifest it returns ErrManifest: check its payload object with
// VerifyPayload instead.
func Verify(r io.ReaderAt, size int64) (*Info, error) {
	cr, err := NewReader(io.NewSectionReader(r, 0, size))
	if err != nil {
		return nil, err
	}
	if size < cr.off+int64(trailerLen) {
		return nil, corrupt("truncated: the trailer is missing")
	}
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return nil, err
	}
	return &Info{Header: cr.h, PayloadOffset: cr.off, PayloadSize: cr.n}, nil
}
