package checkpoint

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
)

// NewPayloadHash returns the hash of payload bytes that Payload.SHA256
// records: SHA-256. Write the payload through it while storing the object,
// then take PayloadSum.
func NewPayloadHash() hash.Hash { return sha256.New() }

// PayloadSum returns h.Sum(nil) in lowercase hex, as Payload.SHA256 holds it.
func PayloadSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

// VerifyPayload reads the object r, size bytes long, and checks that it is
// exactly the payload p names: p.Size bytes whose SHA-256 is p.SHA256. size
// is the object's size as the store reports it (a stat, a HEAD); VerifyPayload
// reads [0, size) and nothing beyond. A mismatch, or fewer than size bytes to
// read, is a *CorruptError; an I/O error of r is returned as it is, and an
// invalid p is an error wrapping ErrInvalid. It reads in constant memory, so
// the storage layer calls it before it hands out the first payload byte,
// relying on the object not changing afterwards: payload objects are
// immutable.
func VerifyPayload(r io.ReaderAt, size int64, p *Payload) error {
	if p == nil {
		return fmt.Errorf("%w: no payload reference", ErrInvalid)
	}
	if err := p.validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if size != p.Size {
		return corrupt("payload %s: size is %d, the manifest says %d", p.Object, size, p.Size)
	}
	sum := NewPayloadHash()
	n, err := io.Copy(sum, io.NewSectionReader(r, 0, size))
	if err != nil {
		return err
	}
	if n != size {
		return corrupt("payload %s: truncated: read %d of %d bytes", p.Object, n, size)
	}
	if PayloadSum(sum) != p.SHA256 {
		return corrupt("payload %s: checksum mismatch", p.Object)
	}
	return nil
}
