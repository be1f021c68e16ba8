package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// repoRef is a repository as a ckpt process reaches it: a location and the
// environment it needs (AWS_* for S3).
type repoRef struct {
	loc string
	env []string
}

// ckptExit runs the ckpt binary with stdin and returns its stdout and exit
// status; it fails the test only if the binary cannot run at all.
func ckptExit(tb testing.TB, repo repoRef, stdin string, args ...string) (string, int) {
	c := exec.Command(ckptBinary(tb), append([]string{"--repo", repo.loc}, args...)...)
	home := tb.TempDir()
	c.Env = append([]string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "cache")}, repo.env...)
	c.Stdin = strings.NewReader(stdin)
	var out, stderr strings.Builder
	c.Stdout, c.Stderr = &out, &stderr
	err := c.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return out.String() + stderr.String(), ee.ExitCode()
	case err != nil:
		tb.Errorf("ckpt %v: %v", args, err)
		return "", -1
	}
	return out.String(), 0
}

func generation(tb testing.TB, repo repoRef, id string) uint64 {
	out, code := ckptExit(tb, repo, "", "show", id, "--json")
	var s struct{ Generation uint64 }
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil {
		tb.Fatalf("ckpt show: exit %d: %s", code, out)
	}
	return s.Generation
}

// TestContention runs 16 processes that each increment a counter five times
// with load, then save --if-generation --wait, retrying on exit 5, while
// readers load all the time. No update may be lost and no reader may see a
// partial payload.
func TestContention(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few hundred ckpt processes")
	}
	dir, id := newSession(t)
	contend(t, repoRef{loc: dir}, id, 16, 5)
}

// TestContentionS3 is TestContention on an S3 repository: processes
// contending through leases and conditional writes lose no update either.
func TestContentionS3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a few hundred ckpt processes")
	}
	bin, why := s3test.Find()
	if bin == "" {
		if os.Getenv("CKPT_REQUIRE_VERSITYGW") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	gw, err := s3test.Start(bin, t.TempDir(), "ckpt-contention")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Stop() })
	repo := repoRef{loc: gw.URL("contention"), env: append(gw.Env(t.TempDir()), "CKPT_S3_LEASE=5s")}
	out, code := ckptExit(t, repo, "", "create", "--prefix", "contention")
	if code != 0 {
		t.Fatalf("create: %s", out)
	}
	contend(t, repo, strings.TrimSpace(out), 8, 4)
}

// contend has procs processes each increment a counter each times with
// load, then save --if-generation --wait, retrying on exit 5, while readers
// load all the time; it checks that no update was lost.
func contend(t *testing.T, repo repoRef, id string, procs, each int) {
	if out, code := ckptExit(t, repo, "0", "save", id); code != 0 {
		t.Fatalf("first save: %s", out)
	}
	var (
		writers   sync.WaitGroup
		readers   sync.WaitGroup
		done      atomic.Bool
		conflicts atomic.Int64
		reads     atomic.Int64
	)
	for p := range procs {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for range each {
				for attempt := 0; ; attempt++ {
					if attempt == 1000 {
						t.Errorf("writer %d: no success after 1000 attempts", p)
						return
					}
					g := generation(t, repo, id)
					out, code := ckptExit(t, repo, "", "load", id, "--generation", strconv.FormatUint(g, 10))
					if code == 3 {
						continue // pruned from history meanwhile
					}
					n, err := strconv.Atoi(out)
					if code != 0 || err != nil {
						t.Errorf("writer %d: load of generation %d: exit %d: %q", p, g, code, out)
						return
					}
					out, code = ckptExit(t, repo, strconv.Itoa(n+1), "save", id, "--if-generation", strconv.FormatUint(g, 10), "--wait", "30s")
					if code == 5 {
						conflicts.Add(1)
						continue
					}
					if code != 0 {
						t.Errorf("writer %d: save: exit %d: %s", p, code, out)
						return
					}
					break
				}
			}
		}()
	}
	for range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for !done.Load() {
				out, code := ckptExit(t, repo, "", "load", id)
				if _, err := strconv.Atoi(out); code != 0 || err != nil {
					t.Errorf("reader: exit %d: %q", code, out)
					return
				}
				reads.Add(1)
			}
		}()
	}
	writers.Wait()
	done.Store(true)
	readers.Wait()
	out, code := ckptExit(t, repo, "", "load", id)
	if code != 0 || out != strconv.Itoa(procs*each) {
		t.Errorf("counter is %q (exit %d), want %d: updates were lost", out, code, procs*each)
	}
	if g := generation(t, repo, id); g != uint64(procs*each+1) {
		t.Errorf("generation is %d, want %d", g, procs*each+1)
	}
	t.Logf("%d increments by %d processes: %d conflicts retried, %d concurrent loads, none partial", procs*each, procs, conflicts.Load(), reads.Load())
}

// BenchmarkContention16 has 16 processes save to one session with --wait,
// next to one process saving alone, and reports commits per second for
// each and the longest any save waited.
func BenchmarkContention16(b *testing.B) {
	const procs, each = 16, 10
	dir, id := newSession(b)
	repo := repoRef{loc: dir}
	ckptBinary(b)
	save := func() time.Duration {
		start := time.Now()
		if out, code := ckptExit(b, repo, "state", "save", id, "--wait", "120s"); code != 0 {
			b.Errorf("save: exit %d: %s", code, out)
		}
		return time.Since(start)
	}
	var single, contended time.Duration
	var longest time.Duration
	var mu sync.Mutex
	for b.Loop() {
		start := time.Now()
		for range procs * each {
			save()
		}
		single += time.Since(start)

		start = time.Now()
		var wg sync.WaitGroup
		for range procs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					d := save()
					mu.Lock()
					longest = max(longest, d)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		contended += time.Since(start)
	}
	n := float64(b.N * procs * each)
	b.ReportMetric(n/single.Seconds(), "single-commits/s")
	b.ReportMetric(n/contended.Seconds(), "16proc-commits/s")
	b.ReportMetric(float64(longest.Milliseconds()), "longest-wait-ms")
}
