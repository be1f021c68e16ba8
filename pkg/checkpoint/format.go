package checkpoint

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
)

// Version is the format version this package writes and reads.
const Version = 1

const (
	magic        = "CKPT\r\n\x1a\n"
	trailerMagic = "CKPTEND\n"
	preambleLen  = len(magic) + 4 + 4 // magic, version, header length
	headerCRCLen = 4
	trailerLen   = len(trailerMagic) + 8 + sha256.Size
)

// TrailerSize is the length of the trailer that follows the payload. A
// checkpoint file of size S whose header ends at offset O (as ReadHeader
// returns it) holds a payload of S-O-TrailerSize bytes.
const TrailerSize = int64(trailerLen)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CorruptError reports data that is not an intact checkpoint: bad magic, a
// damaged header, a truncated file or a checksum mismatch.
type CorruptError struct {
	Reason string
}

func (e *CorruptError) Error() string { return "corrupt checkpoint: " + e.Reason }

// ErrInvalid reports a header that cannot be written: a flag, title or app id
// outside the rules of Header.Validate.
var ErrInvalid = errors.New("invalid checkpoint metadata")

// VersionError reports a checkpoint written in a format version this package
// does not read, typically by a newer ckpt.
type VersionError struct {
	Version uint32
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("unsupported checkpoint format version %d (this ckpt reads version %d)", e.Version, Version)
}

func corrupt(format string, args ...any) error {
	return &CorruptError{Reason: fmt.Sprintf(format, args...)}
}

// encodeHeader returns the preamble, header and header CRC of h.
func encodeHeader(h *Header) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	js, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode header: %w", err)
	}
	if len(js) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header is %d bytes, the limit is %d", ErrInvalid, len(js), MaxHeaderSize)
	}
	b := make([]byte, 0, preambleLen+len(js)+headerCRCLen)
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint32(b, Version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	b = append(b, js...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// Writer writes one checkpoint to an underlying io.Writer. The header is
// written by NewWriter, the payload by Write, the trailer by Close.
// A Writer is not safe for concurrent use.
type Writer struct {
	w    io.Writer
	sum  hash.Hash
	n    int64
	err  error
	done bool
}

// NewWriter validates h and writes the preamble and header to w in a single
// Write call, so that a reader of a partly written file sees either no header
// or all of it.
func NewWriter(w io.Writer, h *Header) (*Writer, error) {
	b, err := encodeHeader(h)
	if err != nil {
		return nil, err
	}
	cw := &Writer{w: w, sum: sha256.New()}
	cw.sum.Write(b)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return cw, nil
}

// Write writes payload bytes.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("checkpoint: write after close")
	}
	n, err := w.w.Write(p)
	w.sum.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// Size returns the number of payload bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Close writes the trailer. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return nil
	}
	w.done = true
	t := make([]byte, 0, trailerLen)
	t = append(t, trailerMagic...)
	t = binary.BigEndian.AppendUint64(t, uint64(w.n))
	w.sum.Write(t)
	t = w.sum.Sum(t)
	if _, err := w.w.Write(t); err != nil {
		w.err = err
		return err
	}
	return nil
}

// ReadHeader reads and checks the preamble and header at the start of r. It
// returns the header and the number of bytes read, which is the offset of the
// payload. It does not read or check the payload.
func ReadHeader(r io.Reader) (*Header, int64, error) {
	h, raw, err := readHeader(r)
	return h, int64(len(raw)), err
}

func readHeader(r io.Reader) (*Header, []byte, error) {
	pre := make([]byte, preambleLen)
	n, err := io.ReadFull(r, pre)
	if m := min(n, len(magic)); n == 0 || string(pre[:m]) != magic[:m] {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, err
		}
		return nil, nil, corrupt("not a checkpoint file (bad magic)")
	}
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, corrupt("truncated before the end of the header")
		}
		return nil, nil, err
	}
	if v := binary.BigEndian.Uint32(pre[8:12]); v != Version {
		return nil, nil, &VersionError{Version: v}
	}
	hlen := binary.BigEndian.Uint32(pre[12:16])
	if hlen > MaxHeaderSize {
		return nil, nil, corrupt("header length %d exceeds the limit of %d", hlen, MaxHeaderSize)
	}
	raw := make([]byte, preambleLen+int(hlen)+headerCRCLen)
	copy(raw, pre)
	if _, err := io.ReadFull(r, raw[preambleLen:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, corrupt("truncated before the end of the header")
		}
		return nil, nil, err
	}
	body := raw[:len(raw)-headerCRCLen]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(raw[len(body):]) {
		return nil, nil, corrupt("header checksum mismatch")
	}
	var h Header
	js := raw[preambleLen:len(body)]
	if t := bytes.TrimLeft(js, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, nil, corrupt("header is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, nil, corrupt("header is not valid: %v", err)
	}
	if len(bytes.TrimSpace(js[dec.InputOffset():])) != 0 {
		return nil, nil, corrupt("header has trailing data")
	}
	if err := h.Validate(); err != nil {
		return nil, nil, corrupt("header is not valid: %v", err)
	}
	return &h, raw, nil
}

// Reader reads one checkpoint from an underlying io.Reader: the header at
// once, then the payload through Read. Read returns io.EOF only after the
// trailer has been checked; if the file is truncated, has trailing bytes or
// fails its checksum, the last Read returns a *CorruptError instead.
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

// NewReader reads and checks the header at the start of r.
func NewReader(r io.Reader) (*Reader, error) {
	h, raw, err := readHeader(r)
	if err != nil {
		return nil, err
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

// Info describes a verified checkpoint.
type Info struct {
	Header *Header
	// PayloadOffset and PayloadSize locate the payload within the file.
	PayloadOffset int64
	PayloadSize   int64
}

// Verify reads the whole checkpoint in r, size bytes long, and checks it. On
// success the payload is the section [PayloadOffset, PayloadOffset+PayloadSize)
// of r.
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
