package storage_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Load tells ReportProgress how its passes over the payload go: a backend
// that downloads objects (S3) reports a download pass, then every backend
// a verify pass; within a pass Done never goes back, and each pass ends at
// the payload's size, before Load returns.
func testLoadProgress(t *testing.T, h harness) {
	s, b := initSession(t, h)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3<<16) // 3 MiB
	if _, err := s.Save(t.Context(), bytes.NewReader(payload)); err != nil {
		t.Fatal(err)
	}
	_, downloads := b.(storage.Spooler)
	spool, err := os.Create(filepath.Join(t.TempDir(), "spool"))
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	for _, opts := range [][]storage.LoadOption{nil, {storage.SpoolTo(spool)}} {
		var events []storage.Progress
		cp, err := s.Load(t.Context(), append(opts, storage.ReportProgress(func(p storage.Progress) {
			events = append(events, p)
		}))...)
		if err != nil {
			t.Fatal(err)
		}
		cp.Close()
		size := int64(len(payload))
		ends := map[string]bool{}
		for i, e := range events {
			if i > 0 && events[i-1].Pass == e.Pass && e.Done < events[i-1].Done {
				t.Fatalf("%s pass went back from %d to %d", e.Pass, events[i-1].Done, e.Done)
			}
			if e.Total != size || e.Done > size {
				t.Fatalf("event %+v, want a total of %d", e, size)
			}
			if e.Done == size {
				ends[e.Pass] = true
			}
		}
		if !ends[storage.PassVerify] {
			t.Errorf("spool %v: no verify pass reached %d bytes: %+v", opts != nil, size, events)
		}
		if downloads && !ends[storage.PassDownload] {
			t.Errorf("spool %v: a backend that downloads reported no complete download: %+v", opts != nil, events)
		}
		if !downloads && ends[storage.PassDownload] {
			t.Errorf("a backend that reads in place reported a download")
		}
	}
}
