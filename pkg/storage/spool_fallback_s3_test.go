package storage_test

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// ckpt load -o on S3: Load downloads the current payload into the spool
// file, it fails its SHA-256, and Load falls back to a format-1 history
// file, which is not spooled. The spool must then be empty, so that what
// the caller copies into it is the verified payload alone, not the corrupt
// bytes of the first download followed by it.
func TestSpoolFallbackLeavesNoCorruptBytes(t *testing.T) {
	ctx := t.Context()
	v1, err := os.ReadFile(filepath.Join("..", "..", "testdata", "v1repo", "nightly-xbzagqkq7f6a", "session"))
	if err != nil {
		t.Fatal(err)
	}
	st := s3test.NewStore(t, s3store.Options{})
	b, err := st.Backend("review-spool")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, storage.CheckpointFile, v1); err != nil {
		t.Fatal(err)
	}
	s := storage.New(b)
	want, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("load the format-1 session: %v", err)
	}
	wantBytes, _ := readAllClose(want)

	// The first format-2 save: the format-1 file is copied into history.
	mustSave(t, s, strings.Repeat("new payload ", 100))
	m, _, err := b.ReadHead(ctx, storage.CheckpointFile, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(m, []byte(storage.PayloadPrefix))
	obj := string(m[i : i+len(storage.PayloadPrefix)+32])
	damage(t, b, obj, flipAt(5))

	f, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cp, err := s.Load(ctx, storage.SpoolTo(f))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Logf("fell back to generation %d (format %d), Spooled=%v, skipped %v", cp.Header.Generation, cp.Header.Format, cp.Spooled, cp.Skipped)
	if !cp.Spooled { // what cmd/load.go:133 does
		if _, err := io.Copy(f, cp); err != nil {
			t.Fatal(err)
		}
	}
	cp.Close()
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != wantBytes {
		t.Errorf("load -o would write %d bytes (%.40q...), want the %d verified bytes of the fallback generation", len(got), got, len(wantBytes))
	}
}
