package checkpoint_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// The tests in this file damage a valid checkpoint in every way they can
// enumerate and check that no damage goes unnoticed: doc.go promises that a
// truncated file, a file with bytes appended and a file with any bit flipped
// all fail verification.

// smallFile is the checkpoint the exhaustive damage tests work on.
func smallFile(t testing.TB) []byte {
	return encode(t, fullHeader(), []byte("hello, checkpoint\n"))
}

// checkCorrupt fails t unless err is a *CorruptError.
func checkCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("%s: error %v (%T), want *CorruptError", what, err, err)
	}
}

// checkVersion fails t unless err is a *VersionError for version v.
func checkVersion(t *testing.T, what string, err error, v uint32) {
	t.Helper()
	var ve *checkpoint.VersionError
	if !errors.As(err, &ve) || ve.Version != v {
		t.Errorf("%s: error %v (%T), want *VersionError{Version: %d}", what, err, err, v)
	}
}

// checkDamaged fails t unless err is what a file b, damaged from a valid
// one, must produce: a *VersionError if the version field no longer holds a
// version this package reads, a *CorruptError otherwise.
func checkDamaged(t *testing.T, what string, err error, b []byte) {
	t.Helper()
	if len(b) >= specVersionOff+4 {
		if v := binary.BigEndian.Uint32(b[specVersionOff:]); (v < 1 || v > checkpoint.Version) && string(b[:len(specMagic)]) == specMagic {
			checkVersion(t, what, err, v)
			return
		}
	}
	checkCorrupt(t, what, err)
}

// readStream reads a checkpoint from r with NewReader and io.ReadAll and
// returns the header, the payload and the first error.
func readStream(r io.Reader) (*checkpoint.Header, []byte, error) {
	cr, err := checkpoint.NewReader(r)
	if err != nil {
		return nil, nil, err
	}
	p, err := io.ReadAll(cr)
	return cr.Header(), p, err
}

// TestBitFlips flips each bit of the file in turn.
func TestBitFlips(t *testing.T) {
	file := smallFile(t)
	for i := range file {
		for bit := range 8 {
			b := bytes.Clone(file)
			b[i] ^= 1 << bit
			what := fmt.Sprintf("bit %d of byte %d flipped", bit, i)
			_, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
			checkDamaged(t, "Verify: "+what, err, b)
			_, _, err = readStream(bytes.NewReader(b))
			checkDamaged(t, "Reader: "+what, err, b)
		}
	}
}

// TestTruncated cuts the file at every length short of its own.
func TestTruncated(t *testing.T) {
	file := smallFile(t)
	for n := range len(file) {
		what := fmt.Sprintf("truncated to %d of %d bytes", n, len(file))
		_, err := checkpoint.Verify(bytes.NewReader(file[:n]), int64(n))
		checkCorrupt(t, "Verify: "+what, err)
		// The size argument alone must bound what Verify reads.
		_, err = checkpoint.Verify(bytes.NewReader(file), int64(n))
		checkCorrupt(t, "Verify with a short size: "+what, err)
		_, _, err = readStream(bytes.NewReader(file[:n]))
		checkCorrupt(t, "Reader: "+what, err)
	}
}

// TestAppended adds bytes after the trailer.
func TestAppended(t *testing.T) {
	file := smallFile(t)
	for _, extra := range [][]byte{
		{0},
		{'\n'},
		{file[len(file)-1]},
		file[len(file)-int(checkpoint.TrailerSize):], // the trailer again
		file, // a second checkpoint
	} {
		b := append(bytes.Clone(file), extra...)
		what := fmt.Sprintf("%d bytes appended", len(extra))
		_, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
		checkCorrupt(t, "Verify: "+what, err)
		_, _, err = readStream(bytes.NewReader(b))
		checkCorrupt(t, "Reader: "+what, err)
	}
}

// TestTrailerLength checks the payload length in the trailer on its own: the
// files here have a correct SHA-256 over a wrong length.
func TestTrailerLength(t *testing.T) {
	file := smallFile(t)
	_, off, _ := checkpoint.ReadHeader(bytes.NewReader(file))
	n := uint64(int64(len(file)) - off - checkpoint.TrailerSize)
	for _, claim := range []uint64{0, n - 1, n + 1, 1 << 63} {
		b := bytes.Clone(file[:len(file)-sha256.Size])
		binary.BigEndian.PutUint64(b[len(b)-8:], claim)
		sum := sha256.Sum256(b)
		b = append(b, sum[:]...)
		_, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
		checkCorrupt(t, fmt.Sprintf("Verify: trailer claims %d bytes of %d", claim, n), err)
		_, _, err = readStream(bytes.NewReader(b))
		checkCorrupt(t, fmt.Sprintf("Reader: trailer claims %d bytes of %d", claim, n), err)
	}
}

// TestBadMagic feeds data that is not a checkpoint at all, or one mangled by
// a text-mode transfer, which is what the \r\n in the magic is there to catch.
func TestBadMagic(t *testing.T) {
	file := smallFile(t)
	for name, b := range map[string][]byte{
		"empty":           {},
		"magic only":      []byte(specMagic),
		"CRLF mangled":    bytes.Replace(file, []byte("\r\n"), []byte("\n"), 1),
		"LF mangled":      bytes.Replace(file, []byte("\n"), []byte("\r\n"), 1),
		"text":            []byte("hello, checkpoint\n"),
		"trailer first":   append([]byte(specTrailerMagic), file...),
		"zeros":           make([]byte, len(file)),
		"preamble, v1, 0": append([]byte(specMagic), 0, 0, 0, 1, 0, 0, 0, 0),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
			checkCorrupt(t, "Verify", err)
			_, _, err = checkpoint.ReadHeader(bytes.NewReader(b))
			checkCorrupt(t, "ReadHeader", err)
		})
	}
}

// TestReadHeaderDetectsDamage flips every bit of the header section and hands
// ReadHeader that section alone.
func TestReadHeaderDetectsDamage(t *testing.T) {
	file := smallFile(t)
	_, off, err := checkpoint.ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	for i := range off {
		for bit := range 8 {
			b := bytes.Clone(file[:off])
			b[i] ^= 1 << bit
			_, _, err := checkpoint.ReadHeader(bytes.NewReader(b))
			checkDamaged(t, fmt.Sprintf("bit %d of byte %d flipped", bit, i), err, b)
		}
	}
}

// strictReader returns the bytes of b, then records any attempt to read
// further and fails it.
type strictReader struct {
	b        []byte
	overread bool
}

func (s *strictReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		s.overread = true
		return 0, errors.New("read past the preamble")
	}
	n := copy(p, s.b)
	s.b = s.b[n:]
	return n, nil
}

// TestHeaderLengthLimit checks that a header length over MaxHeaderSize is
// refused as soon as it is read, before anything is allocated for it.
func TestHeaderLengthLimit(t *testing.T) {
	preamble := func(hlen uint32) []byte {
		b := []byte(specMagic)
		b = binary.BigEndian.AppendUint32(b, checkpoint.Version)
		return binary.BigEndian.AppendUint32(b, hlen)
	}
	for _, hlen := range []uint32{checkpoint.MaxHeaderSize + 1, 1 << 31, 1<<32 - 1} {
		t.Run(fmt.Sprint(hlen), func(t *testing.T) {
			sr := &strictReader{b: preamble(hlen)}
			_, _, err := checkpoint.ReadHeader(sr)
			checkCorrupt(t, "ReadHeader", err)
			if sr.overread {
				t.Error("ReadHeader read past the header length field")
			}

			// Whatever it allocates, it must not be the header.
			const runs = 20
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for range runs {
				_, _, _ = checkpoint.ReadHeader(bytes.NewReader(preamble(hlen)))
			}
			runtime.ReadMemStats(&after)
			if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 4<<10 {
				t.Errorf("ReadHeader allocated %d bytes per call for a header length of %d", per, hlen)
			}

			file := smallFile(t)
			binary.BigEndian.PutUint32(file[specHeaderLenOff:], hlen)
			_, err = checkpoint.Verify(bytes.NewReader(file), int64(len(file)))
			checkCorrupt(t, "Verify", err)
		})
	}

	// At the limit the length is accepted, so ReadHeader goes on to read the
	// header and finds the file truncated.
	sr := &strictReader{b: preamble(checkpoint.MaxHeaderSize)}
	_, _, err := checkpoint.ReadHeader(sr)
	if !sr.overread {
		t.Errorf("ReadHeader refused a header length of MaxHeaderSize without reading it (error %v)", err)
	}
}

// TestVersion checks that a file in another format version is reported as
// such, whatever follows the version field, and not as corruption.
func TestVersion(t *testing.T) {
	js := []byte(`{"generation":1,"saved":"2024-01-02T03:04:05Z","created":"2024-01-02T03:04:05Z"}`)
	for _, v := range []uint32{0, checkpoint.Version + 1, 1<<32 - 1} {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			for name, file := range map[string][]byte{
				"v1 layout":      specEncode(v, js, []byte("payload")),
				"v2 layout":      specManifest(v, js),
				"unknown layout": append(specEncode(v, nil, nil)[:specPreambleLen], "\x00\x01 a future format"...),
			} {
				_, err := checkpoint.Verify(bytes.NewReader(file), int64(len(file)))
				checkVersion(t, name+": Verify", err, v)
				_, _, err = checkpoint.ReadHeader(bytes.NewReader(file))
				checkVersion(t, name+": ReadHeader", err, v)
				_, err = checkpoint.NewReader(bytes.NewReader(file))
				checkVersion(t, name+": NewReader", err, v)
				_, herr := checkpoint.DecodeManifest(file)
				checkVersion(t, name+": DecodeManifest", herr, v)
				_, herr = checkpoint.HeaderLen(file)
				checkVersion(t, name+": HeaderLen", herr, v)

				var ce *checkpoint.CorruptError
				if errors.As(err, &ce) {
					t.Errorf("%s: a version error is also a *CorruptError", name)
				}
				if msg := err.Error(); !strings.Contains(msg, fmt.Sprint(v)) {
					t.Errorf("%s: error %q does not name version %d", name, msg, v)
				}
			}
		})
	}

	// The same bytes with version 1, and as a manifest with version 2, are
	// fine: the test above failed on the version and nothing else.
	file := specEncode(1, js, []byte("payload"))
	if _, err := checkpoint.Verify(bytes.NewReader(file), int64(len(file))); err != nil {
		t.Errorf("version 1: %v", err)
	}
	if _, err := checkpoint.DecodeManifest(specManifest(2, js)); err != nil {
		t.Errorf("version 2: %v", err)
	}
}

// TestV1ReadersRefuseManifests checks that NewReader and Verify, which read
// a format-1 file with its payload inline, say ErrManifest of an intact
// manifest instead of reading on into bytes that are not there, whatever
// follows it, and that a damaged manifest is corruption first.
func TestV1ReadersRefuseManifests(t *testing.T) {
	m := encodeManifest(t, fullManifest())
	trailer := smallFile(t)[len(smallFile(t))-int(checkpoint.TrailerSize):]
	for name, b := range map[string][]byte{
		"manifest":                  m,
		"manifest and a v1 trailer": append(bytes.Clone(m), trailer...),
		"manifest and a payload":    append(bytes.Clone(m), "hello, checkpoint\n"...),
	} {
		_, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
		if !errors.Is(err, checkpoint.ErrManifest) {
			t.Errorf("%s: Verify: %v, want ErrManifest", name, err)
		}
		r, err := checkpoint.NewReader(bytes.NewReader(b))
		if !errors.Is(err, checkpoint.ErrManifest) || r != nil {
			t.Errorf("%s: NewReader = %v, %v; want nil, ErrManifest", name, r, err)
		}
		var ce *checkpoint.CorruptError
		if errors.As(err, &ce) {
			t.Errorf("%s: ErrManifest is also a *CorruptError", name)
		}
	}
	bad := bytes.Clone(m)
	bad[len(bad)/2] ^= 1
	_, err := checkpoint.Verify(bytes.NewReader(bad), int64(len(bad)))
	checkCorrupt(t, "Verify of a damaged manifest", err)
}
