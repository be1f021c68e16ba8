package checkpoint

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
)

// Version is the format version this package writes (2). It reads 1 and 2.
const Version = 2

// minVersion is the oldest format version this package reads.
const minVersion = 1

const (
	magic        = "CKPT\r\n\x1a\n"
	preambleLen  = len(magic) + 4 + 4 // magic, version, header length
	versionOff   = len(magic)
	headerLenOff = versionOff + 4
	headerCRCLen = 4
)

// castagnoli is the CRC-32C table of the header checksums, made on first use
// rather than when the package is initialised.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// CorruptError reports data that is not an intact checkpoint: bad magic, a
// damaged header, a truncated file, a checksum mismatch, or a payload object
// that is not the one its manifest names.
type CorruptError struct {
	Reason string
}

func (e *CorruptError) Error() string { return "corrupt checkpoint: " + e.Reason }

// ErrInvalid reports a header that cannot be written: a flag, title, app id
// or payload reference outside the rules of Header.Validate.
var ErrInvalid = errors.New("invalid checkpoint metadata")

// ErrManifest is returned by NewReader and Verify for an intact format-2
// manifest. They read format-1 files, whose payload is inline; a manifest's
// payload is a separate object, read with DecodeManifest and checked with
// VerifyPayload. It is not a *CorruptError: the data is fine, the caller
// asked the wrong question of it.
var ErrManifest = errors.New("checkpoint is a format-2 manifest: its payload is a separate object")

// VersionError reports a checkpoint written in a format version this package
// does not read, typically by a newer ckpt.
type VersionError struct {
	Version uint32
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("unsupported checkpoint format version %d (this ckpt reads versions %d to %d)", e.Version, minVersion, Version)
}

func corrupt(format string, args ...any) error {
	return &CorruptError{Reason: fmt.Sprintf(format, args...)}
}

// encodeHeader returns the preamble, header and header CRC of h in format
// version v.
func encodeHeader(h *Header, v uint32) ([]byte, error) {
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if v == 1 && h.Payload != nil {
		return nil, fmt.Errorf("%w: a format-1 header cannot name a payload object", ErrInvalid)
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
	b = binary.BigEndian.AppendUint32(b, v)
	b = binary.BigEndian.AppendUint32(b, uint32(len(js)))
	b = append(b, js...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli())), nil
}

// HeaderLen returns the total length of the preamble, header and header CRC
// that the first 16 bytes of b announce, so that a caller that read a short
// prefix (a ranged GET of 4 KiB) knows how many bytes to fetch: for a
// format-1 file it is the payload offset, for a format-2 manifest its whole
// length. It returns a *CorruptError for bad magic, a header length over
// MaxHeaderSize or b shorter than 16 bytes, and a *VersionError for a
// version this package does not read. It checks nothing beyond the preamble.
func HeaderLen(b []byte) (int64, error) {
	_, n, err := parsePreamble(b)
	return int64(n), err
}

// parsePreamble checks the preamble at the start of b and returns the format
// version and the length of preamble, header and header CRC.
func parsePreamble(b []byte) (v uint32, n int, err error) {
	if m := min(len(b), len(magic)); len(b) == 0 || string(b[:m]) != magic[:m] {
		return 0, 0, corrupt("not a checkpoint file (bad magic)")
	}
	if len(b) < preambleLen {
		return 0, 0, corrupt("truncated before the end of the header")
	}
	v = binary.BigEndian.Uint32(b[versionOff:])
	if v < minVersion || v > Version {
		return 0, 0, &VersionError{Version: v}
	}
	hlen := binary.BigEndian.Uint32(b[headerLenOff:])
	if hlen > MaxHeaderSize {
		return 0, 0, corrupt("header length %d exceeds the limit of %d", hlen, MaxHeaderSize)
	}
	return v, preambleLen + int(hlen) + headerCRCLen, nil
}

// ReadHeader reads and checks the preamble and header at the start of r, a
// format-1 file or a format-2 manifest, and sets the header's Format. It
// returns the header and the number of bytes read: for format 1 the offset of
// the payload, for format 2 the manifest's whole length. It does not read or
// check a format-1 payload, and it does not notice bytes after the end of a
// manifest (DecodeManifest does).
func ReadHeader(r io.Reader) (*Header, int64, error) {
	h, raw, err := readHeader(r)
	return h, int64(len(raw)), err
}

// readHeader reads and checks the preamble and header at the start of r, and
// returns the header and the bytes it read.
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
	v, total, err := parsePreamble(pre)
	if err != nil {
		return nil, nil, err
	}
	raw := make([]byte, total)
	copy(raw, pre)
	if _, err := io.ReadFull(r, raw[preambleLen:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, corrupt("truncated before the end of the header")
		}
		return nil, nil, err
	}
	h, err := decodeHeader(raw, v)
	if err != nil {
		return nil, nil, err
	}
	return h, raw, nil
}

// decodeHeader checks the CRC of raw, a whole preamble, header and header
// CRC in format version v, and decodes the header.
func decodeHeader(raw []byte, v uint32) (*Header, error) {
	body := raw[:len(raw)-headerCRCLen]
	if crc32.Checksum(body, castagnoli()) != binary.BigEndian.Uint32(raw[len(body):]) {
		return nil, corrupt("header checksum mismatch")
	}
	var h Header
	js := raw[preambleLen:len(body)]
	if t := bytes.TrimLeft(js, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return nil, corrupt("header is not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, corrupt("header is not valid: %v", err)
	}
	if len(bytes.TrimSpace(js[dec.InputOffset():])) != 0 {
		return nil, corrupt("header has trailing data")
	}
	if err := h.Validate(); err != nil {
		return nil, corrupt("header is not valid: %v", err)
	}
	if v == 1 && h.Payload != nil {
		// Format 1 has no such field: only damage or a forger puts it there.
		return nil, corrupt("header is not valid: a format-1 header names a payload object")
	}
	h.Format = v
	return &h, nil
}
