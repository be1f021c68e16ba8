package checkpoint_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// This file holds a second encoder, written from the layout table in doc.go
// rather than from format.go, and the helpers the other tests share.

const (
	specMagic        = "CKPT\r\n\x1a\n"
	specTrailerMagic = "CKPTEND\n"
	specPreambleLen  = 16 // magic, version, header length
	specVersionOff   = 8  // offset of the version field
	specHeaderLenOff = 12 // offset of the header length field
)

// specManifest lays out a format-2 manifest as doc.go describes it, with any
// version and any header bytes, so tests can build manifests the package
// would refuse to write. The header CRC is always correct.
func specManifest(version uint32, header []byte) []byte {
	b := []byte(specMagic)
	b = binary.BigEndian.AppendUint32(b, version)
	b = binary.BigEndian.AppendUint32(b, uint32(len(header)))
	b = append(b, header...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// specEncode lays out a format-1 checkpoint as doc.go describes it, with any
// version and any header bytes, so tests can build files the package would
// refuse to write. The header CRC and the trailing SHA-256 are always
// correct.
func specEncode(version uint32, header, payload []byte) []byte {
	b := specManifest(version, header)
	b = append(b, payload...)
	b = append(b, specTrailerMagic...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	sum := sha256.Sum256(b)
	return append(b, sum[:]...)
}

// encodeManifest encodes h with EncodeManifest.
func encodeManifest(t testing.TB, h *checkpoint.Header) []byte {
	t.Helper()
	b, err := checkpoint.EncodeManifest(h)
	if err != nil {
		t.Fatalf("EncodeManifest: %v", err)
	}
	return b
}

// payloadRef returns the reference to payload as an object named after its
// SHA-256.
func payloadRef(payload []byte) *checkpoint.Payload {
	sum := sha256.Sum256(payload)
	return &checkpoint.Payload{
		Object: "payload-" + hex.EncodeToString(sum[:]),
		Size:   int64(len(payload)),
		SHA256: hex.EncodeToString(sum[:]),
	}
}

// encode writes one format-1 checkpoint with the test-only V1Writer.
func encode(t testing.TB, h *checkpoint.Header, payload []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := checkpoint.NewV1Writer(&buf, h)
	if err != nil {
		t.Fatalf("NewV1Writer: %v", err)
	}
	if n, err := w.Write(payload); err != nil || n != len(payload) {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(payload))
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return buf.Bytes()
}

// fullManifest returns fullHeader as a format-2 manifest header: with a
// Payload, and so without NoPayload.
func fullManifest() *checkpoint.Header {
	h := fullHeader()
	h.NoPayload = false
	h.Payload = payloadRef([]byte("hello, checkpoint\n"))
	h.Kept = []checkpoint.Kept{
		{Generation: h.Generation - 1, Payload: h.Payload.Object},
		{Generation: 2, Payload: ""},
	}
	return h
}

// fullHeader returns a header that sets every field but Payload (which
// excludes NoPayload, and format 1 cannot store), with text outside ASCII and
// times in more than one zone.
func fullHeader() *checkpoint.Header {
	return &checkpoint.Header{
		Generation: 1<<40 + 7,
		Saved:      time.Date(2025, 11, 21, 23, 59, 58, 123456789, time.UTC),
		Created:    time.Date(2024, 2, 29, 4, 5, 6, 7, time.FixedZone("IST", 5*3600+1800)),
		Title:      "Ünïcödé draft ✓ 日本語 🚀 \"quoted\" <tag> & more",
		Flags:      []string{"incomplete", "submitted", "v1.2_rc-3"},
		App:        "org.example.editor/ü",
		Key:        "9fceb02d0ae598e95dc970b74767f19372d61af8",
		Owner: &checkpoint.Owner{
			PID:     31337,
			Host:    "build-hôst.example",
			User:    "zoë",
			Started: time.Date(2025, 11, 21, 22, 0, 0, 0, time.FixedZone("", -7*3600)),
			Command: "editor --autosave 'my file'",
		},
		NoPayload: true,
		Steps: []checkpoint.Step{
			{Name: "build", State: checkpoint.StepPassed, Exit: 0, Attempts: 1, Started: time.Date(2025, 11, 21, 22, 1, 0, 5, time.UTC), Duration: 1500 * time.Millisecond,
				Identity: checkpoint.Identity{Key: "1a2b3c4d", Command: []string{"make", "build", "ü"}},
				Passed:   []checkpoint.Identity{{Key: "1a2b3c4d", Command: []string{"make", "build", "ü"}}, {Key: "0f0f", Command: []string{"make"}}}},
			{Name: "unit-tests", State: checkpoint.StepRunning, Exit: -1, Attempts: 2, Started: time.Date(2025, 11, 21, 22, 2, 0, 0, time.FixedZone("", 3600)),
				Owner: &checkpoint.Owner{PID: 7, Host: "h", Started: time.Date(2025, 11, 21, 22, 2, 0, 0, time.UTC)}, Note: "a note", First: time.Date(2025, 11, 21, 22, 0, 0, 0, time.UTC)},
		},
	}
}

// headerDiff describes how got differs from want, or returns "" if they are
// the same header. Times compare with Equal: the format keeps the instant,
// not the monotonic reading or the *time.Location. Format is not compared: it
// says where a header came from, not what it holds.
func headerDiff(want, got *checkpoint.Header) string {
	if want == nil || got == nil {
		if want == got {
			return ""
		}
		return fmt.Sprintf("header is %v, want %v", got, want)
	}
	var d []string
	add := func(field string, got, want any) {
		d = append(d, fmt.Sprintf("%s = %#v, want %#v", field, got, want))
	}
	if got.Generation != want.Generation {
		add("Generation", got.Generation, want.Generation)
	}
	if !got.Saved.Equal(want.Saved) {
		add("Saved", got.Saved, want.Saved)
	}
	if !got.Created.Equal(want.Created) {
		add("Created", got.Created, want.Created)
	}
	if got.Title != want.Title {
		add("Title", got.Title, want.Title)
	}
	if !slices.Equal(got.Flags, want.Flags) {
		add("Flags", got.Flags, want.Flags)
	}
	if got.App != want.App {
		add("App", got.App, want.App)
	}
	switch g, w := got.Owner, want.Owner; {
	case g == nil && w == nil:
	case g == nil || w == nil:
		add("Owner", g, w)
	default:
		if g.PID != w.PID || g.Host != w.Host || g.User != w.User || g.Command != w.Command || !g.Started.Equal(w.Started) {
			add("Owner", *g, *w)
		}
	}
	if got.NoPayload != want.NoPayload {
		add("NoPayload", got.NoPayload, want.NoPayload)
	}
	if !slices.EqualFunc(got.Steps, want.Steps, func(a, b checkpoint.Step) bool {
		sameID := func(x, y checkpoint.Identity) bool { return x.Key == y.Key && slices.Equal(x.Command, y.Command) }
		return a.Name == b.Name && a.State == b.State && a.Exit == b.Exit && a.Attempts == b.Attempts &&
			a.Started.Equal(b.Started) && a.Duration == b.Duration &&
			sameID(a.Identity, b.Identity) && slices.EqualFunc(a.Passed, b.Passed, sameID) &&
			reflect.DeepEqual(a.Owner, b.Owner) && a.Note == b.Note && a.First.Equal(b.First)
	}) {
		add("Steps", got.Steps, want.Steps)
	}
	if got.Key != want.Key {
		add("Key", got.Key, want.Key)
	}
	if !slices.Equal(got.Kept, want.Kept) {
		add("Kept", got.Kept, want.Kept)
	}
	switch g, w := got.Payload, want.Payload; {
	case g == nil && w == nil:
	case g == nil || w == nil || *g != *w:
		add("Payload", g, w)
	}
	return strings.Join(d, "; ")
}

// TestHeaderDiffCoversEveryField fails when Header or Owner gains a field, as
// a reminder to teach headerDiff (and fullHeader) about it.
func TestHeaderDiffCoversEveryField(t *testing.T) {
	if n := reflect.TypeFor[checkpoint.Header]().NumField(); n != 13 {
		t.Errorf("Header has %d fields; update headerDiff, fullHeader and fullManifest", n)
	}
	if n := reflect.TypeFor[checkpoint.Step]().NumField(); n != 11 {
		t.Errorf("Step has %d fields; update headerDiff and fullHeader", n)
	}
	if n := reflect.TypeFor[checkpoint.Owner]().NumField(); n != 5 {
		t.Errorf("Owner has %d fields; update headerDiff and fullHeader", n)
	}
	if n := reflect.TypeFor[checkpoint.Kept]().NumField(); n != 2 {
		t.Errorf("Kept has %d fields; update headerDiff and fullManifest", n)
	}
	if n := reflect.TypeFor[checkpoint.Payload]().NumField(); n != 3 {
		t.Errorf("Payload has %d fields; update headerDiff and fullManifest", n)
	}
	if d := headerDiff(fullHeader(), fullHeader()); d != "" {
		t.Errorf("headerDiff of equal headers: %s", d)
	}
	if d := headerDiff(fullManifest(), fullManifest()); d != "" {
		t.Errorf("headerDiff of equal manifest headers: %s", d)
	}
	p := fullManifest()
	p.Payload.Size++
	if headerDiff(fullManifest(), p) == "" {
		t.Error("headerDiff misses a change in Payload.Size")
	}
	other := fullHeader()
	other.Owner.Started = other.Owner.Started.Add(time.Nanosecond)
	if headerDiff(fullHeader(), other) == "" {
		t.Error("headerDiff misses a change in Owner.Started")
	}
}

// TestManifestLayout checks that EncodeManifest produces, byte for byte, the
// format-2 layout that doc.go documents, with the header encoded as the JSON
// of Header.
func TestManifestLayout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header *checkpoint.Header
	}{
		{"zero header", &checkpoint.Header{}},
		{"full header", fullHeader()},
		{"full header with a payload", fullManifest()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, err := json.Marshal(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			want := specManifest(2, js)
			got := encodeManifest(t, tc.header)
			if !bytes.Equal(got, want) {
				t.Errorf("EncodeManifest output differs from doc.go layout at byte %d\n got: %q\nwant: %q", firstDiff(got, want), got, want)
			}
		})
	}
	// The payload reference is stored under the names doc.go gives.
	js, _ := json.Marshal(fullManifest().Payload)
	if want := `{"object":"payload-` + fullManifest().Payload.SHA256 + `","size":18,"sha256":"` + fullManifest().Payload.SHA256 + `"}`; string(js) != want {
		t.Errorf("Payload JSON = %s, want %s", js, want)
	}
}

// TestLayout checks that the V1Writer produces, byte for byte, the format-1
// layout that doc.go documents, with the header encoded as the JSON of Header.
func TestLayout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		header  *checkpoint.Header
		payload string
	}{
		{"zero header, no payload", &checkpoint.Header{}, ""},
		{"full header", fullHeader(), "payload \x00\xff bytes\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js, err := json.Marshal(tc.header)
			if err != nil {
				t.Fatal(err)
			}
			want := specEncode(1, js, []byte(tc.payload))
			got := encode(t, tc.header, []byte(tc.payload))
			if !bytes.Equal(got, want) {
				t.Errorf("V1Writer output differs from doc.go layout at byte %d\n got: %q\nwant: %q", firstDiff(got, want), got, want)
			}
			if int64(len(got)) != specPreambleLen+int64(len(js))+4+int64(len(tc.payload))+checkpoint.TrailerSize {
				t.Errorf("file is %d bytes; TrailerSize %d does not add up", len(got), checkpoint.TrailerSize)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
