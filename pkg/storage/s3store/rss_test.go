package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// The peak resident memory of a 1 GiB Create (and Open) is measured in a
// child process, this test binary run again for TestRSSChild alone, so that
// nothing else in the process counts. The child reports its own VmHWM from
// /proc/self/status: the ru_maxrss the parent could read counts the
// parent's memory too, since Go starts children with vfork.

const (
	rssChildEnv = "CKPT_S3_RSS_CHILD" // "save" or "load"
	rssURLEnv   = "CKPT_S3_RSS_URL"
	rssIDEnv    = "CKPT_S3_RSS_ID"
	rssSize     = 1 << 30
	rssLimitMiB = 128
)

// TestPeakRSS1GiB creates a 1 GiB object, streamed from a generator, with
// the default part size and concurrency, then opens and reads it back, each
// in a child process, and checks that neither's peak RSS reaches 128 MiB.
// The race detector multiplies memory use, so it is skipped under -race,
// and under -short.
func TestPeakRSS1GiB(t *testing.T) {
	if raceEnabled {
		t.Skip("peak RSS is not meaningful under the race detector; run without -race")
	}
	if testing.Short() {
		t.Skip("-short: skipping the 1 GiB upload")
	}
	st := s3test.NewStore(t, s3store.Options{})
	b := newBackend(t, st)
	for _, mode := range []string{"create", "open"} {
		rss, took := rssChild(t, st.Root(), b.ID(), mode)
		t.Logf("peak RSS of a 1 GiB %s: %.1f MiB (%s, %.0f MiB/s)", mode, rss, took.Round(time.Millisecond), float64(rssSize>>20)/took.Seconds())
		if rss >= rssLimitMiB {
			t.Errorf("peak RSS of a 1 GiB %s is %.1f MiB, over %d MiB", mode, rss, rssLimitMiB)
		}
	}
	if _, info, err := b.ReadHead(t.Context(), rssObject, 1); err != nil || info.Size != rssSize {
		t.Errorf("after the 1 GiB upload: %+v, %v", info, err)
	}
}

// BenchmarkS3Create1GiBPeakRSS reports the peak RSS of a 1 GiB Create in a
// child process as the metric peak-RSS-MiB.
func BenchmarkS3Create1GiBPeakRSS(b *testing.B) {
	st := s3test.NewStore(b, s3store.Options{})
	be := newBackend(b, st)
	var rss float64
	for b.Loop() {
		rss, _ = rssChild(b, st.Root(), be.ID(), "create")
		if err := be.Delete(b.Context(), rssObject); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(rssSize)
	b.ReportMetric(rss, "peak-RSS-MiB")
}

const rssObject = "payload-rss"

// rssChild runs TestRSSChild in a child process and returns its peak RSS in
// MiB and how long the operation took.
func rssChild(t testing.TB, url, id, mode string) (float64, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+mode, rssURLEnv+"="+url, rssIDEnv+"="+id, s3test.EndpointEnv+"="+s3test.Shared(t).Endpoint)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("child %s: %v\n%s", mode, err, out)
	}
	_, after, ok := strings.Cut(string(out), rssMarker)
	var kib int64
	if _, err := fmt.Sscan(after, &kib); !ok || err != nil {
		t.Fatalf("child %s reported no peak RSS:\n%s", mode, out)
	}
	return float64(kib) / 1024, took
}

const rssMarker = "ckpt-peak-rss-kib "

// peakRSS returns this process's peak resident set size in KiB.
func peakRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, errors.New("no VmHWM in /proc/self/status")
}

// TestRSSChild is the child of TestPeakRSS1GiB; it does nothing otherwise.
func TestRSSChild(t *testing.T) {
	mode := os.Getenv(rssChildEnv)
	if mode == "" {
		t.Skip("run by TestPeakRSS1GiB")
	}
	ctx := context.Background()
	st, err := s3store.Open(ctx, os.Getenv(rssURLEnv), s3test.Shared(t).StoreOptions(s3store.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.Backend(os.Getenv(rssIDEnv))
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "create":
		n, err := b.Create(ctx, rssObject, patternReader(rssSize))
		if err != nil || n != rssSize {
			t.Fatalf("Create = %d, %v", n, err)
		}
	case "open":
		o, err := b.Open(ctx, rssObject)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		n, err := io.Copy(io.Discard, io.NewSectionReader(o, 0, o.Size()))
		if err != nil || n != rssSize {
			t.Fatalf("read %d bytes: %v", n, err)
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	kib, err := peakRSS()
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("%s%d\n", rssMarker, kib)
}
