package checkpoint_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const goldenDir = "../../testdata/golden"

type goldenCase struct {
	file   string
	format uint32 // 1: a file by the V1Writer; 2: a manifest by EncodeManifest
	header *checkpoint.Header
	// payload is the inline payload of a format-1 file, or the object a
	// format-2 manifest names.
	payload []byte
}

// goldenCases are the checkpoints pinned in testdata/golden. A change to the
// encoding that alters them breaks every checkpoint already on disk, so it
// needs a new format version, not -update. The format-1 files were written by
// ckpt before format 2 and must keep decoding as they are.
func goldenCases() []goldenCase {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	saved := time.Date(2024, 1, 2, 15, 4, 5, 600000000, time.FixedZone("", 2*3600))
	small := func() *checkpoint.Header {
		return &checkpoint.Header{
			Generation: 3,
			Saved:      saved,
			Created:    created,
			Title:      "small – “golden” ✓",
			Flags:      []string{"incomplete", "reviewed"},
			App:        "org.example.notes",
			Owner: &checkpoint.Owner{
				PID:     4242,
				Host:    "golden.example",
				User:    "ckpt",
				Started: time.Date(2024, 1, 2, 14, 0, 0, 0, time.UTC),
				Command: "ckpt save",
			},
		}
	}
	smallPayload := []byte("hello, checkpoint\n")
	v2small := small()
	v2small.Steps = []checkpoint.Step{{
		Name:     "unit-tests",
		State:    checkpoint.StepPassed,
		Exit:     0,
		Attempts: 2,
		Started:  time.Date(2024, 1, 2, 14, 30, 0, 250000000, time.UTC),
		Duration: 90*time.Second + 5*time.Millisecond,
	}}
	v2small.Payload = payloadRef(smallPayload)
	return []goldenCase{
		{
			file:   "v1-empty.ckpt",
			format: 1,
			header: &checkpoint.Header{Generation: 0, Saved: created, Created: created},
		},
		{
			file:    "v1-small.ckpt",
			format:  1,
			header:  small(),
			payload: smallPayload,
		},
		{
			file:   "v2-empty.manifest",
			format: 2,
			header: &checkpoint.Header{Generation: 0, Saved: created, Created: created},
		},
		{
			file:    "v2-small.manifest",
			format:  2,
			header:  v2small,
			payload: smallPayload,
		},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(goldenDir, tc.file)
			var got []byte
			if tc.format == 1 {
				got = encode(t, tc.header, tc.payload)
			} else {
				got = encodeManifest(t, tc.header)
			}
			if *update {
				if err := os.MkdirAll(goldenDir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./pkg/checkpoint -update to create it)", err)
			}

			// Encoding: the encoder still produces the pinned bytes.
			if !bytes.Equal(got, want) {
				i := firstDiff(got, want)
				t.Errorf("encoding differs from %s at byte %d of %d\n got: %q\nwant: %q",
					path, i, len(want), got[i:min(len(got), i+40)], want[i:min(len(want), i+40)])
			}

			// Decoding: the pinned bytes still read as the same checkpoint.
			if tc.format == 1 {
				checkGoldenV1(t, path, want, tc)
			} else {
				checkGoldenV2(t, path, want, tc)
			}
			n, err := checkpoint.HeaderLen(want[:16])
			if _, off, _ := checkpoint.ReadHeader(bytes.NewReader(want)); err != nil || n != off {
				t.Errorf("HeaderLen of %s = %d, %v; want %d, the length ReadHeader read", path, n, err, off)
			}
		})
	}
}

// checkGoldenV1 checks that a pinned format-1 file decodes as tc.
func checkGoldenV1(t *testing.T, path string, b []byte, tc goldenCase) {
	t.Helper()
	info, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("Verify %s: %v", path, err)
	}
	if d := headerDiff(tc.header, info.Header); d != "" || info.Header.Format != 1 {
		t.Errorf("header of %s (format %d, want 1): %s", path, info.Header.Format, d)
	}
	payload := b[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]
	if !bytes.Equal(payload, tc.payload) {
		t.Errorf("payload of %s = %q, want %q", path, payload, tc.payload)
	}
	h, off, err := checkpoint.ReadHeader(bytes.NewReader(b))
	if err != nil || off != info.PayloadOffset || headerDiff(tc.header, h) != "" || h.Format != 1 {
		t.Errorf("ReadHeader %s = %+v, %d, %v; want the header Verify read and offset %d", path, h, off, err, info.PayloadOffset)
	}
	h, err = checkpoint.DecodeManifest(b)
	if err != nil || headerDiff(tc.header, h) != "" || h.Format != 1 {
		t.Errorf("DecodeManifest %s = %+v, %v; want the header Verify read, format 1", path, h, err)
	}
}

// checkGoldenV2 checks that a pinned format-2 manifest decodes as tc, and
// that its payload reference names tc.payload.
func checkGoldenV2(t *testing.T, path string, b []byte, tc goldenCase) {
	t.Helper()
	h, err := checkpoint.DecodeManifest(b)
	if err != nil {
		t.Fatalf("DecodeManifest %s: %v", path, err)
	}
	if d := headerDiff(tc.header, h); d != "" || h.Format != 2 {
		t.Errorf("header of %s (format %d, want 2): %s", path, h.Format, d)
	}
	rh, off, err := checkpoint.ReadHeader(bytes.NewReader(b))
	if err != nil || off != int64(len(b)) || headerDiff(tc.header, rh) != "" || rh.Format != 2 {
		t.Errorf("ReadHeader %s = %+v, %d, %v; want the header DecodeManifest read and length %d", path, rh, off, err, len(b))
	}
	if _, err := checkpoint.Verify(bytes.NewReader(b), int64(len(b))); !errors.Is(err, checkpoint.ErrManifest) {
		t.Errorf("Verify %s: %v, want ErrManifest", path, err)
	}
	if h.Payload == nil {
		if tc.payload != nil {
			t.Errorf("%s names no payload", path)
		}
		return
	}
	if err := checkpoint.VerifyPayload(bytes.NewReader(tc.payload), int64(len(tc.payload)), h.Payload); err != nil {
		t.Errorf("VerifyPayload of the payload %s names: %v", path, err)
	}
}
