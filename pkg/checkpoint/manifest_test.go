package checkpoint_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// TestManifestRoundTrip encodes headers as manifests and decodes them back.
func TestManifestRoundTrip(t *testing.T) {
	now := time.Now() // carries a monotonic reading and time.Local
	for name, h := range map[string]*checkpoint.Header{
		"zero":             {},
		"generation 0":     {Generation: 0, Created: now, Saved: now},
		"no payload":       fullHeader(),
		"full":             fullManifest(),
		"empty payload":    {Generation: 1, Payload: payloadRef(nil)},
		"format is stored": {Generation: 1, Format: 1},
		"now": func() *checkpoint.Header {
			h := fullManifest()
			h.Saved, h.Created, h.Owner.Started = now, now.Add(-time.Hour), now.Add(-time.Minute)
			return h
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			b := encodeManifest(t, h)
			got, err := checkpoint.DecodeManifest(b)
			if err != nil {
				t.Fatalf("DecodeManifest: %v", err)
			}
			if d := headerDiff(h, got); d != "" {
				t.Error(d)
			}
			if got.Format != 2 {
				t.Errorf("Format = %d, want 2", got.Format)
			}
			rh, n, err := checkpoint.ReadHeader(bytes.NewReader(b))
			if err != nil || n != int64(len(b)) || headerDiff(h, rh) != "" || rh.Format != 2 {
				t.Errorf("ReadHeader = %+v, %d, %v; want the header, %d", rh, n, err, len(b))
			}
			if again := encodeManifest(t, got); !bytes.Equal(again, b) {
				t.Errorf("re-encoding the decoded header differs at byte %d", firstDiff(again, b))
			}
		})
	}
}

// TestManifestDamage damages a manifest in the ways that matter and checks
// that DecodeManifest refuses it with the right error.
func TestManifestDamage(t *testing.T) {
	m := encodeManifest(t, fullManifest())
	js := m[specPreambleLen : len(m)-4]
	withVersion := func(v uint32) []byte {
		b := bytes.Clone(m)
		binary.BigEndian.PutUint32(b[specVersionOff:], v)
		return b
	}
	// reframed replaces old in the header JSON and frames it again with a
	// correct CRC, so that only the header decides.
	reframed := func(old, new string) []byte {
		if !bytes.Contains(js, []byte(old)) {
			t.Fatalf("%q is not in the manifest", old)
		}
		return specManifest(2, bytes.Replace(js, []byte(old), []byte(new), 1))
	}
	sum := fullManifest().Payload.SHA256
	for _, tc := range []struct {
		name    string
		b       []byte
		version uint32 // 0: want a *CorruptError; else a *VersionError for it
		reason  string // part of a *CorruptError's reason
	}{
		{"bit flip in the header", func() []byte { b := bytes.Clone(m); b[specPreambleLen+10] ^= 0x20; return b }(), 0, "header checksum mismatch"},
		{"bit flip in the CRC", func() []byte { b := bytes.Clone(m); b[len(b)-1] ^= 1; return b }(), 0, "header checksum mismatch"},
		{"header length one short", func() []byte {
			b := bytes.Clone(m)
			binary.BigEndian.PutUint32(b[specHeaderLenOff:], uint32(len(js)-1))
			return b
		}(), 0, ""},
		{"truncated by one byte", m[:len(m)-1], 0, "truncated"},
		{"truncated to the preamble", m[:specPreambleLen], 0, "truncated"},
		{"truncated in the preamble", m[:specPreambleLen-1], 0, "truncated"},
		{"empty", nil, 0, "bad magic"},
		{"one trailing byte", append(bytes.Clone(m), 0), 0, "manifest has trailing data"},
		{"trailing newline", append(bytes.Clone(m), '\n'), 0, "manifest has trailing data"},
		{"manifest twice", append(bytes.Clone(m), m...), 0, "manifest has trailing data"},
		{"version 1 (the CRC covers it)", withVersion(1), 0, "header checksum mismatch"},
		{"version 3", withVersion(3), 3, ""},
		{"version 3 with a correct CRC", specManifest(3, js), 3, ""},
		{"payload object name with a path", reframed(`"object":"payload-`, `"object":"../payload-`), 0, "invalid payload object name"},
		{"payload object name empty", reframed(`"object":"payload-`+sum+`"`, `"object":""`), 0, "invalid payload object name"},
		{"payload size negative", reframed(`"size":18`, `"size":-18`), 0, "negative size"},
		{"payload size not a number", reframed(`"size":18`, `"size":"18"`), 0, "header is not valid"},
		{"payload SHA-256 short", reframed(`"sha256":"`+sum, `"sha256":"`+sum[1:]), 0, "lowercase hex"},
		{"payload SHA-256 in upper case", reframed(`"sha256":"`+sum, `"sha256":"`+strings.ToUpper(sum)), 0, "lowercase hex"},
		{"payload SHA-256 missing", reframed(`,"sha256":"`+sum+`"`, ``), 0, "lowercase hex"},
		{"payload with an unknown field", reframed(`"size":18`, `"size":18,"url":"https://example.com"`), 0, "unknown field"},
		{"payload and no_payload", reframed(`"payload":{`, `"no_payload":true,"payload":{`), 0, "no_payload"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := checkpoint.DecodeManifest(tc.b)
			if h != nil {
				t.Errorf("DecodeManifest returned a header with its error")
			}
			if tc.version != 0 {
				checkVersion(t, "DecodeManifest", err, tc.version)
				return
			}
			var ce *checkpoint.CorruptError
			if !errors.As(err, &ce) {
				t.Fatalf("DecodeManifest: %v (%T), want *CorruptError", err, err)
			}
			if !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("DecodeManifest: %v, want a reason with %q", err, tc.reason)
			}
		})
	}
}

// TestManifestBitFlips flips each bit of a manifest in turn.
func TestManifestBitFlips(t *testing.T) {
	m := encodeManifest(t, fullManifest())
	for i := range m {
		for bit := range 8 {
			b := bytes.Clone(m)
			b[i] ^= 1 << bit
			_, err := checkpoint.DecodeManifest(b)
			checkDamaged(t, fmt.Sprintf("bit %d of byte %d flipped", bit, i), err, b)
		}
	}
}

// TestManifestTruncated cuts a manifest at every length short of its own.
func TestManifestTruncated(t *testing.T) {
	m := encodeManifest(t, fullManifest())
	for n := range len(m) {
		_, err := checkpoint.DecodeManifest(m[:n])
		checkCorrupt(t, fmt.Sprintf("truncated to %d of %d bytes", n, len(m)), err)
	}
}

// TestReadHeaderReadsAManifestPrefix pins what ReadHeader promises and
// DecodeManifest adds: ReadHeader reads a manifest and stops, not noticing
// what follows.
func TestReadHeaderReadsAManifestPrefix(t *testing.T) {
	m := encodeManifest(t, fullManifest())
	b := append(bytes.Clone(m), "trailing"...)
	cr := &countingReader{r: bytes.NewReader(b)}
	h, n, err := checkpoint.ReadHeader(cr)
	if err != nil || n != int64(len(m)) || cr.n != n || headerDiff(fullManifest(), h) != "" {
		t.Errorf("ReadHeader = %+v, %d, %v after reading %d bytes; want the header after %d bytes", h, n, err, cr.n, len(m))
	}
	_, err = checkpoint.DecodeManifest(b)
	checkCorrupt(t, "DecodeManifest", err)
}

// TestDecodeManifestV1 checks that DecodeManifest reads the header of a
// format-1 file and leaves its payload alone.
func TestDecodeManifestV1(t *testing.T) {
	file := smallFile(t)
	_, off, _ := checkpoint.ReadHeader(bytes.NewReader(file))
	damaged := bytes.Clone(file)
	damaged[off] ^= 0xff
	for name, b := range map[string][]byte{
		"intact":          file,
		"damaged payload": damaged,
		"header only":     file[:off],
	} {
		h, err := checkpoint.DecodeManifest(b)
		if err != nil {
			t.Errorf("%s: DecodeManifest: %v", name, err)
			continue
		}
		if d := headerDiff(fullHeader(), h); d != "" || h.Format != 1 {
			t.Errorf("%s: format %d, %s", name, h.Format, d)
		}
	}
	_, err := checkpoint.DecodeManifest(file[:off-1])
	checkCorrupt(t, "DecodeManifest of a truncated header", err)
}

// TestHeaderLen checks HeaderLen on prefixes of format-1 files and format-2
// manifests, and on preambles it must refuse.
func TestHeaderLen(t *testing.T) {
	v1 := smallFile(t)
	m := encodeManifest(t, fullManifest())
	big := encodeManifest(t, func() *checkpoint.Header {
		h := fullManifest()
		h.Title = strings.Repeat("t", checkpoint.MaxTitleLen)
		for i := range 200 {
			h.Steps = append(h.Steps, checkpoint.Step{Name: fmt.Sprintf("step-%03d", i), State: checkpoint.StepPassed})
		}
		return h
	}())
	if len(big) <= 4096 {
		t.Fatalf("the big manifest is %d bytes, not more than a 4 KiB prefix", len(big))
	}
	for name, b := range map[string][]byte{"v1": v1, "v2": m, "v2 over 4 KiB": big} {
		_, want, err := checkpoint.ReadHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{specPreambleLen, 17, 4096, len(b)} {
			got, err := checkpoint.HeaderLen(b[:min(n, len(b))])
			if err != nil || got != want {
				t.Errorf("%s: HeaderLen of the first %d bytes = %d, %v; want %d", name, n, got, err, want)
			}
		}
	}

	preamble := func(v, hlen uint32) []byte {
		b := []byte(specMagic)
		b = binary.BigEndian.AppendUint32(b, v)
		return binary.BigEndian.AppendUint32(b, hlen)
	}
	if n, err := checkpoint.HeaderLen(preamble(2, checkpoint.MaxHeaderSize)); err != nil || n != specPreambleLen+checkpoint.MaxHeaderSize+4 {
		t.Errorf("HeaderLen at the header size limit = %d, %v", n, err)
	}
	for name, b := range map[string][]byte{
		"empty":                 {},
		"bad magic":             append([]byte("CKPT\n\x1a\n\x00"), preamble(2, 10)[8:]...),
		"text":                  []byte("hello, checkpoint\n"),
		"magic only":            []byte(specMagic),
		"15 bytes":              preamble(2, 10)[:15],
		"header over the limit": preamble(2, checkpoint.MaxHeaderSize+1),
		"header length 2^32-1":  preamble(1, 1<<32-1),
	} {
		_, err := checkpoint.HeaderLen(b)
		checkCorrupt(t, "HeaderLen: "+name, err)
	}
	for _, v := range []uint32{0, 3, 1<<32 - 1} {
		_, err := checkpoint.HeaderLen(preamble(v, 10))
		checkVersion(t, fmt.Sprintf("HeaderLen of version %d", v), err, v)
	}
}

// TestVerifyPayload checks a payload object against the reference to it.
func TestVerifyPayload(t *testing.T) {
	payload := []byte("hello, checkpoint\n")
	ref := payloadRef(payload)
	flip := func(i int) []byte { b := bytes.Clone(payload); b[i] ^= 1; return b }
	for _, tc := range []struct {
		name   string
		object []byte
		size   int64 // -1: len(object)
		ref    *checkpoint.Payload
		reason string // "": intact; else part of a *CorruptError's reason
	}{
		{"intact", payload, -1, ref, ""},
		{"empty", nil, -1, payloadRef(nil), ""},
		{"first byte flipped", flip(0), -1, ref, "payload " + ref.Object + ": checksum mismatch"},
		{"last byte flipped", flip(len(payload) - 1), -1, ref, "checksum mismatch"},
		{"truncated", payload[:len(payload)-1], -1, ref, "payload " + ref.Object + ": size is 17, the manifest says 18"},
		{"truncated to nothing", nil, -1, ref, "size is 0, the manifest says 18"},
		{"extended", append(bytes.Clone(payload), 0), -1, ref, "size is 19, the manifest says 18"},
		{"another payload of the same size", []byte("HELLO, CHECKPOINT\n"), -1, ref, "checksum mismatch"},
		{"wrong size in the manifest", payload, -1, &checkpoint.Payload{Object: ref.Object, Size: 17, SHA256: ref.SHA256}, "size is 18, the manifest says 17"},
		{"wrong hash in the manifest", payload, -1, payloadRef([]byte("hello, checkpoint!")), "checksum mismatch"},
		{"object shorter than its stated size", payload[:10], int64(len(payload)), ref, "truncated: read 10 of 18 bytes"},
		{"object longer than its stated size", append(bytes.Clone(payload), "more"...), int64(len(payload)), ref, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if size < 0 {
				size = int64(len(tc.object))
			}
			err := checkpoint.VerifyPayload(bytes.NewReader(tc.object), size, tc.ref)
			if tc.reason == "" {
				if err != nil {
					t.Errorf("VerifyPayload: %v", err)
				}
				return
			}
			var ce *checkpoint.CorruptError
			if !errors.As(err, &ce) || !strings.Contains(ce.Reason, tc.reason) {
				t.Errorf("VerifyPayload: %v (%T), want a *CorruptError with %q", err, err, tc.reason)
			}
		})
	}

	// An invalid reference is the caller's mistake, not corruption.
	for name, p := range map[string]*checkpoint.Payload{
		"nil":           nil,
		"bad name":      {Object: "../x", Size: ref.Size, SHA256: ref.SHA256},
		"bad SHA-256":   {Object: ref.Object, Size: ref.Size, SHA256: "00"},
		"negative size": {Object: ref.Object, Size: -1, SHA256: ref.SHA256},
	} {
		if err := checkpoint.VerifyPayload(bytes.NewReader(payload), int64(len(payload)), p); !errors.Is(err, checkpoint.ErrInvalid) {
			t.Errorf("%s: VerifyPayload: %v, want an error wrapping ErrInvalid", name, err)
		}
	}

	// An I/O error is passed on as it is: it says nothing about the object.
	errIO := errors.New("input/output error")
	err := checkpoint.VerifyPayload(failingReaderAt{payload, 5, errIO}, int64(len(payload)), ref)
	if !errors.Is(err, errIO) {
		t.Errorf("VerifyPayload with a failing ReaderAt: %v, want %v", err, errIO)
	}
}

// TestPayloadHash checks that NewPayloadHash and PayloadSum make the
// SHA-256 that Payload records, in the form Validate accepts.
func TestPayloadHash(t *testing.T) {
	h := checkpoint.NewPayloadHash()
	_, _ = io.WriteString(h, "hello, checkpoint\n")
	const want = "a1fdb77522c2312e981d9dbef2981f5e1990958848a3f3e0f4f74dc1549c2f41" // sha256sum
	if got := checkpoint.PayloadSum(h); got != want {
		t.Errorf("PayloadSum = %s, want %s", got, want)
	}
	if got := checkpoint.PayloadSum(checkpoint.NewPayloadHash()); got != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Errorf("PayloadSum of nothing = %s", got)
	}
}

// TestVerifyPayloadConstantMemory verifies a 256 MiB payload object and
// checks that none of it is held in memory.
func TestVerifyPayloadConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 256 MiB twice")
	}
	const (
		size   = 256 << 20
		budget = 16 << 20
	)
	sum := checkpoint.NewPayloadHash()
	if _, err := io.Copy(sum, &patternReader{n: size}); err != nil {
		t.Fatal(err)
	}
	ref := &checkpoint.Payload{Object: "payload-big", Size: size, SHA256: checkpoint.PayloadSum(sum)}
	object := &syntheticFile{payloadLen: size}

	mw := newMemWatch()
	if err := checkpoint.VerifyPayload(object, object.size(), ref); err != nil {
		t.Fatalf("VerifyPayload: %v", err)
	}
	mw.check(t, "verifying", budget)
}
