package checkpoint_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// goldenSeeds returns the golden files, format-1 files and format-2
// manifests, and a few damaged variants of each.
func goldenSeeds(f *testing.F) [][]byte {
	paths, err := filepath.Glob(filepath.Join(goldenDir, "*.ckpt"))
	if err == nil && len(paths) > 0 {
		var more []string
		more, err = filepath.Glob(filepath.Join(goldenDir, "*.manifest"))
		paths = append(paths, more...)
	}
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
		seeds = append(seeds,
			b,
			b[:len(b)-1],
			b[:max(0, len(b)-int(checkpoint.TrailerSize))],
			append(bytes.Clone(b), 0),
			flipped,
		)
		for _, v := range []uint32{1, 2, 3} {
			other := bytes.Clone(b)
			binary.BigEndian.PutUint32(other[specVersionOff:], v)
			seeds = append(seeds, other)
		}
	}
	return seeds
}

// errKind classifies the errors a damaged in-memory file may produce: with a
// bytes.Reader underneath there is no I/O error to pass on.
func errKind(err error) string {
	var ce *checkpoint.CorruptError
	var ve *checkpoint.VersionError
	switch {
	case errors.As(err, &ce):
		return "corrupt"
	case errors.As(err, &ve):
		return "version"
	case errors.Is(err, checkpoint.ErrManifest):
		return "manifest"
	}
	return ""
}

// checkTyped fails t unless err is one of the errors a damaged in-memory file
// may produce, or ErrManifest for an intact manifest given to a format-1
// reader.
func checkTyped(t *testing.T, what string, err error) {
	t.Helper()
	if errKind(err) == "" {
		t.Fatalf("%s: error %v (%T), want *CorruptError, *VersionError or ErrManifest", what, err, err)
	}
}

// sameKind reports whether two errors are of the same kind (see errKind).
func sameKind(a, b error) bool {
	return errKind(a) == errKind(b)
}

// FuzzReader checks that Verify never panics, rejects with a typed error, and
// that whatever it accepts survives a second trip through the V1Writer.
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

		if info.Header.Format != 1 {
			t.Fatalf("Verify accepted a header of format %d", info.Header.Format)
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
		// The V1Writer's encoding is canonical: writing it again changes nothing.
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

// FuzzHeaderJSON frames arbitrary header bytes with a correct preamble and
// header CRC, as a format-1 file with a trailer and as a format-2 manifest,
// so the fuzzer explores header decoding instead of spending its time on
// checksums.
func FuzzHeaderJSON(f *testing.F) {
	for _, tc := range goldenCases() {
		var b []byte
		if tc.format == 1 {
			b = encode(f, tc.header, tc.payload)
		} else {
			b = encodeManifest(f, tc.header)
		}
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
		`{"payload":null}`,
		`{"payload":{"object":"p","size":0,"sha256":"` + strings.Repeat("0", 64) + `"}}`,
		`{"payload":{"object":"p","size":-1,"sha256":"` + strings.Repeat("0", 64) + `"}}`,
		`{"payload":{"object":"P","size":0,"sha256":"` + strings.Repeat("0", 64) + `"}}`,
		`{"payload":{"object":"p","size":0,"sha256":"` + strings.Repeat("A", 64) + `"}}`,
		`{"payload":{"object":"p","size":0,"sha256":"` + strings.Repeat("0", 64) + `","x":1}}`,
		`{"payload":{"object":"p","size":0,"sha256":"` + strings.Repeat("0", 64) + `"},"no_payload":true}`,
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
		h1 := fuzzHeaderV1(t, js, payload)
		h2 := fuzzHeaderV2(t, js)
		// Format 2 reads every header format 1 does, and format 1 every
		// header format 2 does that names no payload object.
		switch {
		case h1 != nil && h2 == nil:
			t.Fatal("format 1 accepted a header that format 2 refuses")
		case h2 != nil && h2.Payload == nil && h1 == nil:
			t.Fatal("format 2 accepted a header without a payload that format 1 refuses")
		case h1 != nil:
			if d := headerDiff(h1, h2); d != "" {
				t.Fatalf("the formats decode the same header differently: %s", d)
			}
		}
	})
}

// fuzzHeaderV1 frames js as a format-1 file and checks what Verify makes of
// it. It returns the header, or nil if Verify refused it.
func fuzzHeaderV1(t *testing.T, js, payload []byte) *checkpoint.Header {
	b := specEncode(1, js, payload)
	info, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		checkCorrupt(t, "Verify", err)
		return nil
	}
	if info.PayloadOffset != int64(specPreambleLen+len(js)+4) || !bytes.Equal(b[info.PayloadOffset:info.PayloadOffset+info.PayloadSize], payload) {
		t.Fatalf("Verify: payload at [%d, +%d), want [%d, +%d)", info.PayloadOffset, info.PayloadSize, specPreambleLen+len(js)+4, len(payload))
	}
	if err := info.Header.Validate(); err != nil {
		t.Fatalf("Verify accepted a header that does not validate: %v", err)
	}
	if info.Header.Payload != nil || info.Header.Format != 1 {
		t.Fatalf("Verify accepted a header of format %d with payload %+v", info.Header.Format, info.Header.Payload)
	}
	re := encode(t, info.Header, payload)
	info2, err := checkpoint.Verify(bytes.NewReader(re), int64(len(re)))
	if err != nil {
		t.Fatalf("Verify of the re-encoded checkpoint: %v", err)
	}
	if d := headerDiff(info.Header, info2.Header); d != "" {
		t.Fatalf("header changed in a round trip: %s", d)
	}
	return info.Header
}

// fuzzHeaderV2 frames js as a format-2 manifest and checks what
// DecodeManifest makes of it. It returns the header, or nil if
// DecodeManifest refused it.
func fuzzHeaderV2(t *testing.T, js []byte) *checkpoint.Header {
	b := specManifest(2, js)
	h, err := checkpoint.DecodeManifest(b)
	if err != nil {
		checkCorrupt(t, "DecodeManifest", err)
		return nil
	}
	checkManifestRoundTrip(t, b, h)
	return h
}

// FuzzManifest checks that DecodeManifest never panics, rejects with a typed
// error, agrees with ReadHeader and HeaderLen, and that a manifest it accepts
// re-encodes to a manifest of the same header, byte for byte the same if its
// JSON was as EncodeManifest writes it.
func FuzzManifest(f *testing.F) {
	for _, s := range goldenSeeds(f) {
		f.Add(s)
	}
	f.Add(encodeManifest(f, fullManifest()))
	f.Add(specManifest(2, []byte(" {\"generation\" : 1}\n")))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := checkpoint.DecodeManifest(b)
		rh, n, rerr := checkpoint.ReadHeader(bytes.NewReader(b))
		if err != nil {
			checkTyped(t, "DecodeManifest", err)
			if errors.Is(err, checkpoint.ErrManifest) {
				t.Fatal("DecodeManifest returned ErrManifest")
			}
			if rerr != nil && !sameKind(err, rerr) {
				t.Fatalf("DecodeManifest error %v and ReadHeader error %v are of different kinds", err, rerr)
			}
			if rerr == nil && (rh.Format != 2 || n == int64(len(b))) {
				t.Fatalf("DecodeManifest: %v; but ReadHeader read all of a format-%d header", err, rh.Format)
			}
			return
		}
		if rerr != nil || headerDiff(h, rh) != "" || h.Format != rh.Format {
			t.Fatalf("ReadHeader = %+v, %v; DecodeManifest read %+v", rh, rerr, h)
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("DecodeManifest accepted a header that does not validate: %v", err)
		}
		if hl, err := checkpoint.HeaderLen(b); err != nil || hl != n {
			t.Fatalf("HeaderLen = %d, %v; ReadHeader read %d bytes", hl, err, n)
		}
		switch h.Format {
		case 1:
			if h.Payload != nil {
				t.Fatalf("a format-1 header names payload %+v", h.Payload)
			}
		case 2:
			checkManifestRoundTrip(t, b, h)
		default:
			t.Fatalf("DecodeManifest returned a header of format %d", h.Format)
		}
	})
}

// checkManifestRoundTrip checks that h, decoded from the manifest b,
// encodes to a manifest that decodes to the same header, that this encoding
// is a fixed point, and that it is b itself if b holds the JSON EncodeManifest
// would write.
func checkManifestRoundTrip(t *testing.T, b []byte, h *checkpoint.Header) {
	t.Helper()
	if h.Format != 2 {
		t.Fatalf("a manifest decoded to a header of format %d", h.Format)
	}
	if hl, err := checkpoint.HeaderLen(b); err != nil || hl != int64(len(b)) {
		t.Fatalf("HeaderLen = %d, %v; want the manifest's length %d", hl, err, len(b))
	}
	re, err := checkpoint.EncodeManifest(h)
	if err != nil {
		t.Fatalf("EncodeManifest of a decoded manifest: %v", err)
	}
	h2, err := checkpoint.DecodeManifest(re)
	if err != nil {
		t.Fatalf("DecodeManifest of the re-encoded manifest: %v", err)
	}
	if d := headerDiff(h, h2); d != "" {
		t.Fatalf("header changed in a round trip: %s", d)
	}
	if re2, err := checkpoint.EncodeManifest(h2); err != nil || !bytes.Equal(re2, re) {
		t.Fatalf("second re-encoding differs from the first at byte %d (%v)", firstDiff(re2, re), err)
	}
	if js, _ := json.Marshal(h); bytes.Equal(js, b[specPreambleLen:len(b)-4]) && !bytes.Equal(re, b) {
		t.Fatalf("a manifest in canonical form re-encodes differently at byte %d", firstDiff(re, b))
	}
}
