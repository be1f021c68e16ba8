package checkpoint_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// goldenSeeds returns the golden files and a few damaged variants of each.
func goldenSeeds(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.ckpt"))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no golden files in %s (%v): run go test ./pkg/checkpoint -update", goldenDir, err)
	}
	seeds := [][]byte{nil, []byte(specMagic)}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		flipped := bytes.Clone(b)
		flipped[len(flipped)/2] ^= 0x10
		v2 := bytes.Clone(b)
		binary.BigEndian.PutUint32(v2[specVersionOff:], 2)
		seeds = append(seeds,
			b,
			b[:len(b)-1],
			b[:len(b)-int(checkpoint.TrailerSize)],
			append(bytes.Clone(b), 0),
			flipped,
			v2,
		)
	}
	return seeds
}

// checkTyped fails t unless err is one of the errors a damaged in-memory file
// may produce: with a bytes.Reader underneath there is no I/O error to pass on.
func checkTyped(t *testing.T, what string, err error) {
	t.Helper()
	var ce *checkpoint.CorruptError
	var ve *checkpoint.VersionError
	if !errors.As(err, &ce) && !errors.As(err, &ve) {
		t.Fatalf("%s: error %v (%T), want *CorruptError or *VersionError", what, err, err)
	}
}

// sameKind reports whether two errors are both corruption or both version
// errors.
func sameKind(a, b error) bool {
	var ca, cb *checkpoint.CorruptError
	return errors.As(a, &ca) == errors.As(b, &cb)
}

// FuzzReader checks that Verify never panics, rejects with a typed error, and
// that whatever it accepts survives a second trip through the Writer.
func FuzzReader(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
		sh, sp, serr := readStream(bytes.NewReader(b))
		if (err == nil) != (serr == nil) {
			t.Fatalf("Verify error %v, but NewReader and ReadAll error %v", err, serr)
		}
		if err != nil {
			checkTyped(t, "Verify", err)
			checkTyped(t, "Reader", serr)
			if !sameKind(err, serr) {
				t.Fatalf("Verify error %v and Reader error %v are of different kinds", err, serr)
			}
			return
		}

		if int64(len(b)) != info.PayloadOffset+info.PayloadSize+checkpoint.TrailerSize {
			t.Fatalf("file of %d bytes, payload at [%d, +%d)", len(b), info.PayloadOffset, info.PayloadSize)
		}
		payload := b[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]
		if d := headerDiff(info.Header, sh); d != "" {
			t.Fatalf("Reader header differs from Verify header: %s", d)
		}
		if !bytes.Equal(sp, payload) {
			t.Fatalf("Reader payload differs from the section Verify reports")
		}
		h, off, err := checkpoint.ReadHeader(bytes.NewReader(b))
		if err != nil || off != info.PayloadOffset || headerDiff(info.Header, h) != "" {
			t.Fatalf("ReadHeader = %+v, %d, %v; Verify read %+v at %d", h, off, err, info.Header, info.PayloadOffset)
		}
		if err := info.Header.Validate(); err != nil {
			t.Fatalf("Verify accepted a header that does not validate: %v", err)
		}

		// What was read can be written again, and reads back the same.
		re := encode(t, info.Header, payload)
		info2, err := checkpoint.Verify(bytes.NewReader(re), int64(len(re)))
		if err != nil {
			t.Fatalf("Verify of the re-encoded checkpoint: %v", err)
		}
		if d := headerDiff(info.Header, info2.Header); d != "" {
			t.Fatalf("header changed in a round trip: %s", d)
		}
		if p2 := re[info2.PayloadOffset : info2.PayloadOffset+info2.PayloadSize]; !bytes.Equal(p2, payload) {
			t.Fatalf("payload changed in a round trip")
		}
		// The Writer's encoding is canonical: writing it again changes nothing.
		if re2 := encode(t, info2.Header, payload); !bytes.Equal(re2, re) {
			t.Fatalf("second re-encoding differs from the first at byte %d", firstDiff(re2, re))
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	return c.r.Read(p[:min(len(p), c.n)])
}

// FuzzStream checks that the Reader agrees with Verify whatever the sizes of
// the reads underneath it and on top of it. (It is not named FuzzReader…,
// so that -fuzz FuzzReader selects exactly one target.)
func FuzzStream(f *testing.F) {
	for i, s := range goldenSeeds(f) {
		f.Add(s, uint16(i*37), uint16(i*101), i%2 == 0)
		f.Add(s, uint16(0), uint16(0), false) // one byte at a time, both ways
	}
	f.Fuzz(func(t *testing.T, b []byte, under, over uint16, errWithData bool) {
		info, verr := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))

		var src io.Reader = &chunkReader{bytes.NewReader(b), int(under)%4096 + 1}
		if errWithData {
			src = iotest.DataErrReader(src)
		}
		r, err := checkpoint.NewReader(src)
		var got []byte
		if err == nil {
			buf := make([]byte, int(over)%(1<<17)+1)
			for {
				var n int
				n, err = r.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
				if n == 0 {
					t.Fatal("Read returned 0, nil")
				}
			}
			if err == io.EOF {
				err = nil
			}
		}

		if (verr == nil) != (err == nil) {
			t.Fatalf("Verify error %v, but the Reader's error %v", verr, err)
		}
		if verr != nil {
			checkTyped(t, "Reader", err)
			if !sameKind(verr, err) {
				t.Fatalf("Verify error %v and Reader error %v are of different kinds", verr, err)
			}
			return
		}
		if d := headerDiff(info.Header, r.Header()); d != "" {
			t.Fatal(d)
		}
		if want := b[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]; !bytes.Equal(got, want) {
			t.Fatalf("Reader payload (%d bytes) differs from the section Verify reports (%d bytes)", len(got), len(want))
		}
		if r.Size() != info.PayloadSize {
			t.Fatalf("Reader.Size() = %d, Verify PayloadSize = %d", r.Size(), info.PayloadSize)
		}
	})
}

// FuzzHeaderJSON frames arbitrary header bytes with a correct preamble,
// header CRC and trailer, so the fuzzer explores header decoding instead of
// spending its time on checksums.
func FuzzHeaderJSON(f *testing.F) {
	for _, tc := range goldenCases() {
		b := encode(f, tc.header, tc.payload)
		hlen := binary.BigEndian.Uint32(b[specHeaderLenOff:])
		f.Add(b[specPreambleLen:specPreambleLen+hlen], tc.payload)
	}
	for _, js := range []string{
		`{}`,
		`{"generation":18446744073709551615}`,
		`{"generation":-1}`,
		`{"generation":1.5}`,
		`{"flags":["b","a"]}`,
		`{"flags":["a","a"]}`,
		`{"flags":["A"]}`,
		`{"flags":[]}`,
		`{"title":"\ud800"}`,
		"{\"title\":\"\xff\"}",
		`{"saved":"2024-01-02T03:04:05+23:59"}`,
		`{"saved":"10000-01-02T03:04:05Z"}`,
		`{"owner":null}`,
		`{"owner":{"pid":1,"host":"h","started":"2024-01-02T03:04:05Z"}}`,
		`{"unknown":1}`,
		`{"owner":{"unknown":1}}`,
		`{} {}`,
		`[]`,
		``,
	} {
		f.Add([]byte(js), []byte("payload"))
	}
	f.Fuzz(func(t *testing.T, js, payload []byte) {
		if len(js) > checkpoint.MaxHeaderSize {
			return
		}
		b := specEncode(checkpoint.Version, js, payload)
		info, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			checkCorrupt(t, "Verify", err)
			return
		}
		if info.PayloadOffset != int64(specPreambleLen+len(js)+4) || !bytes.Equal(b[info.PayloadOffset:info.PayloadOffset+info.PayloadSize], payload) {
			t.Fatalf("Verify: payload at [%d, +%d), want [%d, +%d)", info.PayloadOffset, info.PayloadSize, specPreambleLen+len(js)+4, len(payload))
		}
		if err := info.Header.Validate(); err != nil {
			t.Fatalf("Verify accepted a header that does not validate: %v", err)
		}
		re := encode(t, info.Header, payload)
		info2, err := checkpoint.Verify(bytes.NewReader(re), int64(len(re)))
		if err != nil {
			t.Fatalf("Verify of the re-encoded checkpoint: %v", err)
		}
		if d := headerDiff(info.Header, info2.Header); d != "" {
			t.Fatalf("header changed in a round trip: %s", d)
		}
	})
}
