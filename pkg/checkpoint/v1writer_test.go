package checkpoint

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"io"
)

// This file keeps the format-1 writer that ckpt used before format 2, so that
// tests can still make format-1 files. It is in package checkpoint but
// exported, so the tests of package checkpoint_test can use it too; it is
// not part of the package outside tests.

// V1Writer writes one format-1 checkpoint to an underlying io.Writer. The
// header is written by NewV1Writer, the payload by Write, the trailer by
// Close. A V1Writer is not safe for concurrent use.
type V1Writer struct {
	w    io.Writer
	sum  hash.Hash
	n    int64
	err  error
	done bool
}

// NewV1Writer validates h and writes the preamble and header to w in a
// single Write call, so that a reader of a partly written file sees either no
// header or all of it. A header with a Payload fails with ErrInvalid: format
// 1 has no payload objects.
func NewV1Writer(w io.Writer, h *Header) (*V1Writer, error) {
	b, err := encodeHeader(h, 1)
	if err != nil {
		return nil, err
	}
	cw := &V1Writer{w: w, sum: sha256.New()}
	cw.sum.Write(b)
	if _, err := w.Write(b); err != nil {
		return nil, err
	}
	return cw, nil
}

// Write writes payload bytes.
func (w *V1Writer) Write(p []byte) (int, error) {
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
func (w *V1Writer) Size() int64 { return w.n }

// Close writes the trailer. It does not close the underlying writer.
func (w *V1Writer) Close() error {
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
