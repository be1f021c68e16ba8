package s3store

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// The benchmarks put the S3 backend, against versitygw on loopback, next to
// the local Dir backend in the same run (make bench), for save and load of
// 4 KiB and 64 MiB checkpoints. A save keeps the default 3 generations: on
// S3 that is a server-side copy of the checkpoint it replaces, locally a
// hard link. Loopback hides network latency, which on a real S3 endpoint
// dominates small saves (about 7 requests each, see doc.go).

var (
	payload4K  = bytes.Repeat([]byte("0123456789abcdef"), 256)
	payload64M = func() []byte {
		b := make([]byte, 64<<20)
		_, _ = io.ReadFull(&pattern{}, b)
		return b
	}
)

func BenchmarkS3Save4K(b *testing.B)     { benchSave(b, s3Session(b), payload4K) }
func BenchmarkLocalSave4K(b *testing.B)  { benchSave(b, localSession(b), payload4K) }
func BenchmarkS3Load4K(b *testing.B)     { benchLoad(b, s3Session(b), payload4K) }
func BenchmarkLocalLoad4K(b *testing.B)  { benchLoad(b, localSession(b), payload4K) }
func BenchmarkS3Save64M(b *testing.B)    { benchSave(b, s3Session(b), payload64M()) }
func BenchmarkLocalSave64M(b *testing.B) { benchSave(b, localSession(b), payload64M()) }
func BenchmarkS3Load64M(b *testing.B)    { benchLoad(b, s3Session(b), payload64M()) }
func BenchmarkLocalLoad64M(b *testing.B) { benchLoad(b, localSession(b), payload64M()) }

func s3Session(b *testing.B) storage.Session {
	o := testOptions()
	o.LeaseDuration = DefaultLeaseDuration
	return newSession(b, newStore(b, o))
}

func localSession(b *testing.B) storage.Session {
	d, err := storage.Init(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func benchSave(b *testing.B, s storage.Session, payload []byte) {
	ctx := context.Background()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := s.Save(ctx, bytes.NewReader(payload)); err != nil {
			b.Fatal(err)
		}
	}
}

func benchLoad(b *testing.B, s storage.Session, payload []byte) {
	ctx := context.Background()
	if _, err := s.Save(ctx, bytes.NewReader(payload)); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		cp, err := s.Load(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, cp); err != nil || n != int64(len(payload)) {
			b.Fatalf("read %d bytes: %v", n, err)
		}
		cp.Close()
	}
}
