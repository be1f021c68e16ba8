package storage_test

// The S3 hookup: the conformance suite, the fault injection and the
// linearizability check against versitygw (package s3test starts it; the
// tests skip when it is absent unless CKPT_REQUIRE_VERSITYGW=1). This file
// is all that ties package storage's tests to pkg/storage/s3store: if that
// package does not build, set this file aside and the rest still runs.

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// s3Harness runs the suite on sessions in a fresh prefix of the shared
// gateway's bucket, one store per test.
func s3Harness() harness {
	return harness{
		New: func(t *testing.T) storage.Backend {
			t.Helper()
			st := s3test.NewStore(t, s3store.Options{})
			var b [6]byte
			_, _ = rand.Read(b[:])
			be, err := st.Backend("sess-" + hex.EncodeToString(b[:]))
			if err != nil {
				t.Fatal(err)
			}
			return be
		},
		// TODO(lead): a lease whose writer is gone (planted with an old
		// renewal time, or a writer whose renewal is stopped) so that
		// StaleLock runs on S3 too.
		Stale:   nil,
		Writers: 4,
		Saves:   6,
	}
}

func TestConformanceS3(t *testing.T) {
	runConformance(t, s3Harness())
}

func TestFaultsS3(t *testing.T) {
	if testing.Short() {
		t.Skip("short: fault injection on S3 makes many requests")
	}
	runFaults(t, s3Harness())
}

func TestLinearizableS3(t *testing.T) {
	runLinearizable(t, s3Harness(), 4, 20)
}
