package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

// buildCkpt compiles ckpt once per test binary run, for tests and benchmarks
// that need the real program in a process of its own.
var buildCkpt = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ckpt-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ckpt")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &exec.Error{Name: "go build: " + string(out), Err: err}
	}
	return bin, nil
})

func ckptBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := buildCkpt()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// newSession creates a session in a fresh repository and returns the
// repository path and the id.
func newSession(tb testing.TB) (string, string) {
	tb.Helper()
	repo := filepath.Join(tb.TempDir(), "repo")
	r, err := repository.Open(repo)
	if err != nil {
		tb.Fatal(err)
	}
	d, err := r.Create(context.Background(), repository.CreateOptions{Prefix: "bench"})
	if err != nil {
		tb.Fatal(err)
	}
	return repo, d.ID()
}

// runCkpt runs the ckpt binary and returns its peak RSS in bytes.
func runCkpt(tb testing.TB, repo string, stdin io.Reader, stdout io.Writer, args ...string) int64 {
	tb.Helper()
	c := exec.Command(ckptBinary(tb), append([]string{"--repo", repo}, args...)...)
	c.Env = []string{"HOME=" + tb.TempDir(), "XDG_CACHE_HOME=" + tb.TempDir()}
	c.Stdin, c.Stdout = stdin, stdout
	var stderr strings.Builder
	c.Stderr = &stderr
	if err := c.Run(); err != nil {
		tb.Fatalf("ckpt %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024
}

// zeros is an endless reader of zero bytes with no allocation per read.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestPeakRSS checks that save and load stream: a 256 MiB checkpoint goes
// through either in well under 64 MiB of resident memory.
func TestPeakRSS(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 256 MiB; skipped with -short")
	}
	const size = 256 << 20
	const limit = 64 << 20
	repo, id := newSession(t)
	if rss := runCkpt(t, repo, io.LimitReader(zeros{}, size), nil, "save", id); rss > limit {
		t.Errorf("save of %d MiB peaked at %d MiB RSS, want under %d MiB", size>>20, rss>>20, limit>>20)
	}
	n := &countWriter{}
	if rss := runCkpt(t, repo, nil, n, "load", id); rss > limit {
		t.Errorf("load of %d MiB peaked at %d MiB RSS, want under %d MiB", size>>20, rss>>20, limit>>20)
	}
	if n.n != size {
		t.Errorf("load wrote %d bytes, want %d", n.n, size)
	}
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkCLISave4K is 'ckpt save' of a 4 KiB payload, a whole process per
// save; compare with BenchmarkCLIProcessFloor, the cost of starting a
// process at all, and with the library benchmarks in pkg/storage.
func BenchmarkCLISave4K(b *testing.B) {
	repo, id := newSession(b)
	file := filepath.Join(b.TempDir(), "state")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789abcdef"), 256), 0o600); err != nil {
		b.Fatal(err)
	}
	ckptBinary(b)
	for b.Loop() {
		runCkpt(b, repo, nil, nil, "save", id, file)
	}
}

// BenchmarkCLIProcessFloor starts the ckpt binary to print its version: the
// process overhead inside BenchmarkCLISave4K.
func BenchmarkCLIProcessFloor(b *testing.B) {
	repo, _ := newSession(b)
	ckptBinary(b)
	for b.Loop() {
		runCkpt(b, repo, nil, io.Discard, "version")
	}
}

// BenchmarkCLI1GiB saves and loads a 1 GiB checkpoint through the ckpt
// binary and reports the peak RSS of each.
func BenchmarkCLI1GiB(b *testing.B) {
	const size = 1 << 30
	repo, id := newSession(b)
	ckptBinary(b)
	var saveRSS, loadRSS int64
	for b.Loop() {
		saveRSS = max(saveRSS, runCkpt(b, repo, io.LimitReader(zeros{}, size), nil, "save", id))
		loadRSS = max(loadRSS, runCkpt(b, repo, nil, io.Discard, "load", id))
	}
	b.SetBytes(2 * size)
	b.ReportMetric(float64(saveRSS)/(1<<20), "save-peak-RSS-MiB")
	b.ReportMetric(float64(loadRSS)/(1<<20), "load-peak-RSS-MiB")
}

// populate fills a fresh repository with n sessions, each a copy of one real
// session's checkpoint, and returns the repository path.
func populate(b *testing.B, n int) string {
	repo, id := newSession(b)
	if out, code := ckptExit(b, repoRef{loc: repo}, "state", "save", id); code != 0 {
		b.Fatalf("save: %s", out)
	}
	cp, err := os.ReadFile(filepath.Join(repo, id, "session"))
	if err != nil {
		b.Fatal(err)
	}
	for i := range n - 1 {
		dir := filepath.Join(repo, fmt.Sprintf("bench-%012d", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "session"), cp, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	return repo
}

// BenchmarkListScale times 'ckpt list' and 'ckpt gc --dry-run' over 10,000
// and 100,000 sessions, next to 'ls -lR' over the same directories, and
// reports the time per session of each.
func BenchmarkListScale(b *testing.B) {
	ckptBinary(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			repo := populate(b, n)
			run := func(name string, c *exec.Cmd) {
				c.Stdout, c.Stderr = io.Discard, io.Discard
				start := time.Now()
				if err := c.Run(); err != nil {
					b.Fatalf("%s: %v", name, err)
				}
				b.ReportMetric(float64(time.Since(start).Nanoseconds())/float64(n), name+"-ns/session")
			}
			for b.Loop() {
				run("ls-lR", exec.Command("ls", "-lR", repo))
				run("list", exec.Command(ckptBinary(b), "--repo", repo, "list"))
				run("gc-dry-run", exec.Command(ckptBinary(b), "--repo", repo, "gc", "--dry-run", "--older-than", "1h"))
			}
		})
	}
}
