package checkpoint_test

import (
	"bytes"
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
	file    string
	header  *checkpoint.Header
	payload []byte
}

// goldenCases are the checkpoints pinned in testdata/golden. A change to the
// encoding that alters them breaks every checkpoint already on disk, so it
// needs a new format version, not -update.
func goldenCases() []goldenCase {
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	saved := time.Date(2024, 1, 2, 15, 4, 5, 600000000, time.FixedZone("", 2*3600))
	return []goldenCase{
		{
			file:   "v1-empty.ckpt",
			header: &checkpoint.Header{Generation: 0, Saved: created, Created: created},
		},
		{
			file: "v1-small.ckpt",
			header: &checkpoint.Header{
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
			},
			payload: []byte("hello, checkpoint\n"),
		},
	}
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join(goldenDir, tc.file)
			got := encode(t, tc.header, tc.payload)
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

			// Encoding: the Writer still produces the pinned bytes.
			if !bytes.Equal(got, want) {
				i := firstDiff(got, want)
				t.Errorf("encoding differs from %s at byte %d of %d\n got: %q\nwant: %q",
					path, i, len(want), got[i:min(len(got), i+40)], want[i:min(len(want), i+40)])
			}

			// Decoding: the pinned bytes still read as the same checkpoint.
			info, err := checkpoint.Verify(bytes.NewReader(want), int64(len(want)))
			if err != nil {
				t.Fatalf("Verify %s: %v", path, err)
			}
			if d := headerDiff(tc.header, info.Header); d != "" {
				t.Errorf("header of %s: %s", path, d)
			}
			payload := want[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]
			if !bytes.Equal(payload, tc.payload) {
				t.Errorf("payload of %s = %q, want %q", path, payload, tc.payload)
			}
			h, off, err := checkpoint.ReadHeader(bytes.NewReader(want))
			if err != nil || off != info.PayloadOffset || headerDiff(tc.header, h) != "" {
				t.Errorf("ReadHeader %s = %+v, %d, %v; want the header Verify read and offset %d", path, h, off, err, info.PayloadOffset)
			}
		})
	}
}
