package s3store

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
)

// The peak resident memory of a 1 GiB save (and load) is measured in a
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

// TestPeakRSS1GiB saves a 1 GiB checkpoint, streamed from a generator, with
// the default part size and concurrency, then loads it back, each in a
// child process, and checks that neither's peak RSS reaches 128 MiB. The
// race detector multiplies memory use, so it is skipped under -race, and
// under -short.
func TestPeakRSS1GiB(t *testing.T) {
	if raceEnabled {
		t.Skip("peak RSS is not meaningful under the race detector; run without -race")
	}
	if testing.Short() {
		t.Skip("-short: skipping the 1 GiB save")
	}
	st := newStore(t, testOptions())
	s := newSession(t, st)
	for _, mode := range []string{"save", "load"} {
		rss, took := rssChild(t, st.Root(), s.id, mode)
		t.Logf("peak RSS of a 1 GiB %s: %.1f MiB (%s, %.0f MiB/s)", mode, rss, took.Round(time.Millisecond), float64(rssSize>>20)/took.Seconds())
		if rss >= rssLimitMiB {
			t.Errorf("peak RSS of a 1 GiB %s is %.1f MiB, over %d MiB", mode, rss, rssLimitMiB)
		}
	}
	stat, err := s.Stat(t.Context())
	if err != nil || stat.Size != rssSize {
		t.Errorf("Stat after the 1 GiB save = %+v, %v", stat, err)
	}
}

// BenchmarkS3Save1GiBPeakRSS reports the peak RSS of a 1 GiB save in a
// child process as the metric peak-RSS-MiB.
func BenchmarkS3Save1GiBPeakRSS(b *testing.B) {
	st := newStore(b, testOptions())
	s := newSession(b, st)
	var rss float64
	for b.Loop() {
		rss, _ = rssChild(b, st.Root(), s.id, "save")
	}
	b.SetBytes(rssSize)
	b.ReportMetric(rss, "peak-RSS-MiB")
}

// rssChild runs TestRSSChild in a child process and returns its peak RSS in
// MiB and how long the operation took.
func rssChild(t testing.TB, url, id, mode string) (float64, time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRSSChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), rssChildEnv+"="+mode, rssURLEnv+"="+url, rssIDEnv+"="+id, endpointEnv+"="+gwEndpoint)
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
	st, err := Open(ctx, os.Getenv(rssURLEnv), Options{UsePathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := st.OpenSession(ctx, os.Getenv(rssIDEnv))
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case "save":
		saved, err := s.Save(ctx, patternReader(rssSize))
		if err != nil || saved.Size != rssSize {
			t.Fatalf("Save = %+v, %v", saved, err)
		}
	case "load":
		cp, err := s.Load(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		n, err := io.Copy(io.Discard, cp)
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
