package storage_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// The save benchmarks compare a library save with the raw syscall floor of
// the same protocol, on the same file system (the benchmark's temp dir; set
// TMPDIR to measure another). Run them in one go test invocation so that
// their ratio is meaningful: make bench.

var payload4K = bytes.Repeat([]byte("0123456789abcdef"), 256)

// BenchmarkSaveFloor4K is the least any next-file save can do: create
// session.next with O_EXCL, write, fsync, rename over session, fsync the
// directory.
func BenchmarkSaveFloor4K(b *testing.B) {
	dir := b.TempDir()
	next, cur := filepath.Join(dir, storage.NextFile), filepath.Join(dir, storage.CheckpointFile)
	b.SetBytes(int64(len(payload4K)))
	for b.Loop() {
		f, err := os.OpenFile(next, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Write(payload4K); err != nil {
			b.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(next, cur); err != nil {
			b.Fatal(err)
		}
		d, err := os.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			b.Fatal(err)
		}
		d.Close()
		f.Close()
	}
}

// BenchmarkSave4K is a library save of a 4 KiB payload, keeping the
// default 3 generations of history.
func BenchmarkSave4K(b *testing.B) { benchSave(b) }

// BenchmarkSave4KNoHistory is the same save keeping no history (Keep(1)):
// the difference with BenchmarkSave4K is what history costs.
func BenchmarkSave4KNoHistory(b *testing.B) { benchSave(b, storage.Keep(1)) }

// BenchmarkSaveMetadata4K is a metadata-only save (a step record, a mark)
// of a session whose payload is 4 KiB: it writes a manifest, no payload.
func BenchmarkSaveMetadata4K(b *testing.B) { benchMetadata(b, len(payload4K)) }

// BenchmarkSaveMetadata64M is the same with a 64 MiB payload: format 2
// makes it cost what the 4 KiB one costs.
func BenchmarkSaveMetadata64M(b *testing.B) { benchMetadata(b, 64<<20) }

func benchMetadata(b *testing.B, size int) {
	ctx := context.Background()
	s, _ := newSession(b)
	if _, err := s.Save(ctx, bytes.NewReader(bytes.Repeat([]byte{'x'}, size))); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Save(ctx, nil, storage.KeepPayload(), storage.WithTitle("mark")); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSave(b *testing.B, opts ...storage.SaveOption) {
	ctx := context.Background()
	s, _ := newSession(b)
	b.SetBytes(int64(len(payload4K)))
	for b.Loop() {
		if _, err := s.Save(ctx, bytes.NewReader(payload4K), opts...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoad4K verifies and reads back a 4 KiB checkpoint.
func BenchmarkLoad4K(b *testing.B) {
	ctx := context.Background()
	s, _ := newSession(b)
	if _, err := s.Save(ctx, bytes.NewReader(payload4K)); err != nil {
		b.Fatal(err)
	}
	buf := new(bytes.Buffer)
	b.SetBytes(int64(len(payload4K)))
	for b.Loop() {
		cp, err := s.Load(ctx)
		if err != nil {
			b.Fatal(err)
		}
		buf.Reset()
		if _, err := buf.ReadFrom(cp); err != nil {
			b.Fatal(err)
		}
		cp.Close()
	}
}
