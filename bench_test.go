package main

// The benchmarks here run ckpt as users do, a process per command, and
// report what each costs next to a floor measured in the same run: a
// process that does nothing, ls -l, a bare AWS SDK request. make bench runs
// them; the ratios are metrics of their own (x-of-…) so that they are
// printed in the benchmark lines. They are benchmarks, never assertions:
// only TestPeakRSS checks anything.
//
// Bytes written are read from /proc/PID/io of each ckpt process just before
// it is reaped (waitid with WNOWAIT), so they include the children it waited
// for: wchar is every byte passed to write(2) and its kin (pipes included),
// disk-B what it sent toward storage (page-cache pages it dirtied, counted
// 4 KiB a page, and direct I/O).

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// buildCkpt compiles ckpt once per test binary run, for tests and benchmarks
// that need the real program in a process of its own.
var buildCkpt = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "ckpt-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "ckpt")
	// Static, as make build and the releases are.
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
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
	return maxRSS(c.ProcessState)
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

// procStats is what finished processes cost, summed over runs.
type procStats struct {
	runs       int
	elapsed    time.Duration
	wchar      int64 // bytes passed to write(2) and its kin
	writeBytes int64 // bytes sent toward storage
	syscw      int64 // write system calls
	maxRSS     int64
	cpu        time.Duration // user and system time
	times      []time.Duration
}

func (s *procStats) add(o procStats) {
	s.runs += o.runs
	s.elapsed += o.elapsed
	s.cpu += o.cpu
	s.times = append(s.times, o.times...)
	s.wchar += o.wchar
	s.writeBytes += o.writeBytes
	s.syscw += o.syscw
	s.maxRSS = max(s.maxRSS, o.maxRSS)
}

func (s procStats) perRun() time.Duration { return s.elapsed / time.Duration(max(s.runs, 1)) }

// median is the median time of a run: fsync latency on a shared disk has
// a long tail, and the ratios are taken between medians.
func (s procStats) median() time.Duration {
	if len(s.times) == 0 {
		return 0
	}
	t := slices.Clone(s.times)
	slices.Sort(t)
	return (t[(len(t)-1)/2] + t[len(t)/2]) / 2
}

// report sets ns/op to the mean time of a run (setup excluded) and adds
// the median time and the bytes written per run.
func (s procStats) report(b *testing.B) {
	n := float64(max(s.runs, 1))
	b.ReportMetric(float64(s.elapsed.Nanoseconds())/n, "ns/op")
	b.ReportMetric(float64(s.median().Microseconds())/1000, "median-ms/op")
	b.ReportMetric(float64(s.cpu.Microseconds())/1000/n, "cpu-ms/op")
	b.ReportMetric(float64(s.wchar)/n, "wchar-B/op")
	b.ReportMetric(float64(s.writeBytes)/n, "disk-B/op")
}

// ckptCmd is ckpt with args on repo, its output thrown away, a home and
// cache of its own and PATH (ckpt step runs commands).
func ckptCmd(tb testing.TB, repo repoRef, args ...string) *exec.Cmd {
	c := exec.Command(ckptBinary(tb), append([]string{"--repo", repo.loc}, args...)...)
	home := tb.TempDir()
	c.Env = append([]string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "cache"), "PATH=" + os.Getenv("PATH")}, repo.env...)
	return c
}

// ckptOut runs ckpt and returns its stdout, trimmed.
func ckptOut(tb testing.TB, repo repoRef, stdin io.Reader, args ...string) string {
	tb.Helper()
	c := ckptCmd(tb, repo, args...)
	var out strings.Builder
	c.Stdin, c.Stdout = stdin, &out
	measure(tb, c)
	return strings.TrimSpace(out.String())
}

// devNull opens /dev/null for output that a benchmark throws away without
// a goroutine copying it.
func devNull(tb testing.TB) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// processFloor is the median time of n runs of 'ckpt version': what starting
// ckpt costs at all.
func processFloor(b *testing.B, n int) time.Duration {
	var s procStats
	for range n {
		c := ckptCmd(b, repoRef{loc: b.TempDir()}, "version")
		c.Stdout = devNull(b)
		s.add(measure(b, c))
	}
	return s.median()
}

// BenchmarkCLIMetadata is 'ckpt step ID NAME -- true' (a new step name
// each time, so that it runs: two generations, running then passed) and
// 'ckpt mark ID --set f' on a local session whose payload is 4 KiB, 256 MiB
// and 1 GiB, saved beforehand. In format 2 neither reads, hashes or copies
// the payload, so the 1 GiB rows should cost what the 4 KiB ones do:
// x-of-4KiB is the ratio of the medians, measured in this run, and
// x-of-floor the ratio to 'ckpt version'.
func BenchmarkCLIMetadata(b *testing.B) {
	ckptBinary(b)
	floor := processFloor(b, 10)
	base := map[string]time.Duration{}
	for _, p := range []struct {
		name string
		size int64
	}{{"4KiB", 4 << 10}, {"256MiB", 256 << 20}, {"1GiB", 1 << 30}} {
		repo, id := newSession(b)
		ref := repoRef{loc: repo}
		c := ckptCmd(b, ref, "save", id, "-")
		c.Stdin = io.LimitReader(zeros{}, p.size)
		measure(b, c)
		// Write the payload out now, not during the steps.
		syscall.Sync()
		for _, verb := range []string{"step", "mark"} {
			b.Run(p.name+"/"+verb, func(b *testing.B) {
				var s procStats
				for b.Loop() {
					args := []string{"mark", id, "--set", "f"}
					if verb == "step" {
						args = []string{"step", id, fmt.Sprintf("x-%d", s.runs), "--", "true"}
					}
					s.add(measure(b, ckptCmd(b, ref, args...)))
				}
				s.report(b)
				b.ReportMetric(float64(s.median())/float64(floor), "x-of-floor")
				if p.name == "4KiB" {
					base[verb] = s.median()
				} else if base[verb] > 0 {
					b.ReportMetric(float64(s.median())/float64(base[verb]), "x-of-4KiB")
				}
			})
		}
	}
}

// BenchmarkCLI1GiB saves and loads a 1 GiB checkpoint through the ckpt
// binary on the local disk and reports the peak RSS of each.
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

// BenchmarkS3Verbs runs every ckpt verb on an S3 repository through a
// counting proxy in front of versitygw, twice per iteration: once as is,
// and once with 20 ms added to every request. It reports the requests of
// a run (requests/op, and per method), its time without delay (ns/op) and
// with it (ms-at-20ms/op), and the sequential round trips two ways:
// seq-requests/op, the longest chain of requests of which each started
// after the one before had ended, and rt-by-latency/op, the time the delay
// added divided by 20 ms. Every process starts with one GET of the marker
// that records the server check (.ckpt-checked). list, last and gc run on
// a prefix of 10 sessions and also report requests/session.
func BenchmarkS3Verbs(b *testing.B) {
	const delay = 20 * time.Millisecond
	const tenN = 10
	gw := startGateway(b)
	px := newS3Proxy(b, gw.Endpoint)
	direct := s3Ref(b, gw, gw.Endpoint, "verbs")
	proxied := s3Ref(b, gw, px.URL, "verbs")
	tenDirect := s3Ref(b, gw, gw.Endpoint, "ten")
	tenProxied := s3Ref(b, gw, px.URL, "ten")
	ckptBinary(b)
	file4K := filepath.Join(b.TempDir(), "state")
	if err := os.WriteFile(file4K, randomBytes(4<<10), 0o600); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(b.TempDir(), "out")

	// The first process checks the server and records it; the others read
	// the record.
	newSaved := func(repo repoRef) string {
		id := ckptOut(b, repo, nil, "create", "--prefix", "bench")
		ckptOut(b, repo, nil, "save", id, file4K)
		return id
	}
	id := newSaved(direct)
	ckptOut(b, direct, nil, "step", id, "setup", "--", "true")
	for range tenN {
		newSaved(tenDirect)
	}

	// A lease on a session, held by this process straight at the
	// gateway: what break-lock --force breaks.
	st, err := s3store.Open(b.Context(), gw.URL("verbs"), gw.StoreOptions(s3store.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	if err := st.CheckConditionalWrites(b.Context()); err != nil {
		b.Fatal(err)
	}
	holdLease := func(id string) func() {
		be, err := st.Backend(id)
		if err != nil {
			b.Fatal(err)
		}
		held, err := be.Lock(b.Context(), storage.NextFile, storage.CurrentOwner("bench holder", time.Now()))
		if err != nil {
			b.Fatal(err)
		}
		return func() { _ = held.Release(b.Context()) }
	}

	steps := 0
	verbs := []struct {
		name string
		ten  bool // on the prefix of ten sessions
		// args prepares a run and returns its arguments, and what to do
		// after it.
		args func() ([]string, func())
	}{
		{"create", false, func() ([]string, func()) { return []string{"create", "--prefix", "bench"}, nil }},
		{"save-4KiB", false, func() ([]string, func()) { return []string{"save", id, file4K}, nil }},
		{"load", false, func() ([]string, func()) { return []string{"load", id, "-o", out}, nil }},
		{"step", false, func() ([]string, func()) {
			steps++
			return []string{"step", id, fmt.Sprintf("x-%d", steps), "--", "true"}, nil
		}},
		{"mark", false, func() ([]string, func()) { return []string{"mark", id, "--set", "f"}, nil }},
		{"show", false, func() ([]string, func()) { return []string{"show", id}, nil }},
		{"history", false, func() ([]string, func()) { return []string{"history", id}, nil }},
		{"verify", false, func() ([]string, func()) { return []string{"verify", id}, nil }},
		{"list", true, func() ([]string, func()) { return []string{"list"}, nil }},
		{"last", true, func() ([]string, func()) { return []string{"last"}, nil }},
		{"gc-dry-run", true, func() ([]string, func()) {
			return []string{"gc", "--dry-run", "--older-than", "1h"}, nil
		}},
		{"remove", false, func() ([]string, func()) { return []string{"remove", newSaved(direct)}, nil }},
		{"break-lock-none", false, func() ([]string, func()) { return []string{"break-lock", id}, nil }},
		{"break-lock-force", false, func() ([]string, func()) {
			victim := newSaved(direct)
			return []string{"break-lock", "--force", victim}, holdLease(victim)
		}},
	}
	for _, v := range verbs {
		b.Run(v.name, func(b *testing.B) {
			repo := proxied
			if v.ten {
				repo = tenProxied
			}
			run := func(d time.Duration) (procStats, []s3Request) {
				args, after := v.args()
				px.setDelay(d)
				px.take()
				c := ckptCmd(b, repo, args...)
				c.Stdout = devNull(b)
				s := measure(b, c)
				reqs := px.take()
				px.setDelay(0)
				if after != nil {
					after()
				}
				return s, reqs
			}
			var plain, slow procStats
			var reqs, slowReqs reqStats
			for b.Loop() {
				s, r := run(0)
				plain.add(s)
				reqs.add(r)
				s, r = run(delay)
				slow.add(s)
				slowReqs.add(r)
				slowReqs.addChain(r)
			}
			n := float64(plain.runs)
			b.ReportMetric(float64(plain.elapsed.Nanoseconds())/n, "ns/op")
			reqs.report(b)
			b.ReportMetric(float64(slow.elapsed.Milliseconds())/n, "ms-at-20ms/op")
			b.ReportMetric(float64(slowReqs.chain)/n, "seq-requests/op")
			b.ReportMetric(float64(slow.elapsed-plain.elapsed)/n/float64(delay), "rt-by-latency/op")
			if v.ten {
				b.ReportMetric(float64(reqs.total)/n/tenN, "requests/session")
			}
			b.Logf("%s: %s", v.name, reqs.breakdown())
		})
	}
}

// randomBytes returns n bytes that do not compress.
func randomBytes(n int) []byte {
	p := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(p)
	return p
}

// writeRandomFile writes size random bytes to a new file at path.
func writeRandomFile(tb testing.TB, path string, size int64) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := io.Copy(f, io.LimitReader(rand.NewChaCha8([32]byte{2}), size)); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkS31GiB saves and loads 1 GiB through ckpt on versitygw, no
// delay and no proxy, next to the bare AWS SDK moving the same bytes: one
// PutObject streaming from the file (the SDK reads it once more to sign
// it), a multipart upload of 8 MiB parts, 4 at a time, as ckpt's defaults
// are, and one GetObject into a file, synced. Each reports its time as a
// multiple of the SDK's (x-of-…) and the CPU time of its client
// (client-cpu-s/op: the ckpt process, or this one for the SDK; the
// gateway's is in neither), which a busy machine disturbs less. Then,
// through the counting proxy, a step and a mark on that 1 GiB session:
// requests and time, and a load again to count its requests.
func BenchmarkS31GiB(b *testing.B) {
	const size = 1 << 30
	gw := startGateway(b)
	px := newS3Proxy(b, gw.Endpoint)
	direct := s3Ref(b, gw, gw.Endpoint, "big")
	proxied := s3Ref(b, gw, px.URL, "big")
	client := sdkClient(gw.Endpoint)
	ckptBinary(b)
	dir := b.TempDir()
	src := filepath.Join(dir, "payload")
	writeRandomFile(b, src, size)
	id := ckptOut(b, direct, nil, "create", "--prefix", "big")
	ctx := b.Context()
	bucket := aws.String(gw.Bucket)
	times := map[string]time.Duration{}
	// timed runs fn, which returns what the client cost (its CPU time;
	// for ckpt, its bytes written too), as the sub-benchmark name, and
	// reports its time as a multiple of refs'.
	timed := func(name string, refs []string, fn func() procStats) {
		b.Run(name, func(b *testing.B) {
			var total time.Duration
			var s procStats
			runs := 0
			for b.Loop() {
				// Write out what earlier runs left dirty, not during this one.
				syscall.Sync()
				start := time.Now()
				s.add(fn())
				total += time.Since(start)
				runs++
			}
			per := total / time.Duration(runs)
			times[name] = per
			b.SetBytes(size)
			b.ReportMetric((s.cpu / time.Duration(runs)).Seconds(), "client-cpu-s/op")
			if s.wchar > 0 {
				b.ReportMetric(float64(s.wchar)/float64(runs), "wchar-B/op")
				b.ReportMetric(float64(s.writeBytes)/float64(runs), "disk-B/op")
			}
			for _, ref := range refs {
				if times[ref] > 0 {
					b.ReportMetric(float64(per)/float64(times[ref]), "x-of-"+ref)
				}
			}
		})
	}
	timed("sdk-PutObject", nil, func() (s procStats) {
		defer countCPU(&s.cpu)()
		f, err := os.Open(src)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("sdk/put"), Body: f, ContentLength: aws.Int64(size)}); err != nil {
			b.Fatal(err)
		}
		return
	})
	timed("sdk-multipart", []string{"sdk-PutObject"}, func() (s procStats) {
		defer countCPU(&s.cpu)()
		multipartUpload(b, client, gw.Bucket, "sdk/multipart", src, 8<<20, 4)
		return
	})
	timed("ckpt-save", []string{"sdk-PutObject", "sdk-multipart"}, func() procStats {
		return measure(b, ckptCmd(b, direct, "save", id, src))
	})
	timed("sdk-GetObject", nil, func() (s procStats) {
		defer countCPU(&s.cpu)()
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: bucket, Key: aws.String("sdk/put")})
		if err != nil {
			b.Fatal(err)
		}
		defer out.Body.Close()
		f, err := os.Create(filepath.Join(dir, "sdk-get"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if n, err := io.Copy(f, out.Body); err != nil || n != size {
			b.Fatalf("GetObject: %d bytes, %v", n, err)
		}
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		return
	})
	timed("ckpt-load-o", []string{"sdk-GetObject"}, func() procStats {
		return measure(b, ckptCmd(b, direct, "load", id, "-o", filepath.Join(dir, "ckpt-load")))
	})
	for _, verb := range []string{"load-o", "step", "mark"} {
		b.Run("proxied-"+verb, func(b *testing.B) {
			var s procStats
			var reqs reqStats
			for b.Loop() {
				var args []string
				switch verb {
				case "load-o":
					args = []string{"load", id, "-o", filepath.Join(dir, "ckpt-load")}
				case "step":
					args = []string{"step", id, fmt.Sprintf("x-%d", s.runs), "--", "true"}
				case "mark":
					args = []string{"mark", id, "--set", "f"}
				}
				px.take()
				s.add(measure(b, ckptCmd(b, proxied, args...)))
				reqs.add(px.take())
			}
			b.ReportMetric(float64(s.perRun().Nanoseconds()), "ns/op")
			reqs.report(b)
			b.Logf("%s on 1 GiB: %s", verb, reqs.breakdown())
		})
	}
}

// countCPU returns a function that sets *cpu to the CPU time this process
// used since countCPU was called: what the bare SDK costs its client.
func countCPU(cpu *time.Duration) func() {
	start := selfCPU()
	return func() { *cpu = selfCPU() - start }
}

func selfCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// multipartUpload uploads the file src as key in parts of partSize, conc at
// a time, with the bare SDK.
func multipartUpload(b *testing.B, client *s3.Client, bucket, key, src string, partSize int64, conc int) {
	ctx := b.Context()
	f, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	// Declared CRC32 as ckpt declares it: the SDK adds a CRC32 to every
	// part by default, and the server checks and keeps them.
	up, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &bucket, Key: &key, ChecksumAlgorithm: types.ChecksumAlgorithmCrc32})
	if err != nil {
		b.Fatal(err)
	}
	nparts := int((fi.Size() + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, nparts)
	errs := make(chan error, nparts)
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	for i := range nparts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			off := int64(i) * partSize
			n := min(partSize, fi.Size()-off)
			out, err := client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &bucket, Key: &key, UploadId: up.UploadId,
				PartNumber:        aws.Int32(int32(i + 1)),
				Body:              io.NewSectionReader(f, off, n),
				ContentLength:     aws.Int64(n),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
			})
			if err != nil {
				errs <- err
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: out.ChecksumCRC32}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	if _, err := client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}); err != nil {
		b.Fatal(err)
	}
}

// sessionID returns the i-th of a set of valid session ids: the prefix, '-'
// and 12 characters of the id alphabet.
func sessionID(prefix string, i int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var s [12]byte
	for j := len(s) - 1; j >= 0; j-- {
		s[j] = alphabet[i%32]
		i /= 32
	}
	return prefix + "-" + string(s[:])
}

// spread is how far back the copies' manifests are dated: over ten days,
// so that 'ckpt last' can stop early.
const spread = 10 * 24 * time.Hour

// populateLocal fills a fresh local repository with n sessions: one made
// with the library (a 4 KiB save), and n-1 copies of its directory, whose
// manifests are backdated one after the other over ten days.
func populateLocal(b *testing.B, n int) string {
	repo, id := newSession(b)
	r, err := repository.Open(repo)
	if err != nil {
		b.Fatal(err)
	}
	s, err := r.Open(b.Context(), id)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Save(b.Context(), bytes.NewReader(randomBytes(4<<10))); err != nil {
		b.Fatal(err)
	}
	srcDir := filepath.Join(repo, id)
	des, err := os.ReadDir(srcDir)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{}
	for _, de := range des {
		if de.Type().IsRegular() {
			if files[de.Name()], err = os.ReadFile(filepath.Join(srcDir, de.Name())); err != nil {
				b.Fatal(err)
			}
		}
	}
	now := time.Now()
	for i := range n - 1 {
		dir := filepath.Join(repo, sessionID("copy", i))
		if err := os.Mkdir(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
		t := now.Add(-spread * time.Duration(i+1) / time.Duration(n))
		if err := os.Chtimes(filepath.Join(dir, storage.CheckpointFile), t, t); err != nil {
			b.Fatal(err)
		}
	}
	syscall.Sync()
	return repo
}

// BenchmarkListScale times 'ckpt list', 'ckpt last' and 'ckpt gc --dry-run'
// over 10,000 local sessions, next to 'ls -l' of the repository, output to
// /dev/null, and reports the time per session of each, the ratio to ls -l
// (x-of-ls) and the write calls per session (output buffering).
func BenchmarkListScale(b *testing.B) {
	const n = 10_000
	ckptBinary(b)
	repo := populateLocal(b, n)
	ref := repoRef{loc: repo}
	if out := ckptOut(b, ref, nil, "list"); strings.Count(out, "\n") != n {
		b.Fatalf("ckpt list printed %d rows, want %d", strings.Count(out, "\n"), n)
	}
	var lsTime time.Duration
	for _, t := range []struct {
		name string
		cmd  func() *exec.Cmd
	}{
		{"ls-l", func() *exec.Cmd { return exec.Command("ls", "-l", repo) }},
		{"list", func() *exec.Cmd { return ckptCmd(b, ref, "list") }},
		{"last", func() *exec.Cmd { return ckptCmd(b, ref, "last") }},
		// No session is idle for an hour: gc sweeps each.
		{"gc-dry-run-1h", func() *exec.Cmd { return ckptCmd(b, ref, "gc", "--dry-run", "--older-than", "1h") }},
		// Every session is idle for a second: gc would remove each.
		{"gc-dry-run-1s", func() *exec.Cmd { return ckptCmd(b, ref, "gc", "--dry-run", "--older-than", "1s") }},
	} {
		b.Run(t.name, func(b *testing.B) {
			var s procStats
			for b.Loop() {
				c := t.cmd()
				c.Stdout = devNull(b)
				s.add(measure(b, c))
			}
			b.ReportMetric(float64(s.perRun().Nanoseconds()), "ns/op")
			b.ReportMetric(float64(s.perRun().Nanoseconds())/n, "ns/session")
			b.ReportMetric(float64(s.syscw)/float64(s.runs)/n, "writes/session")
			if t.name == "ls-l" {
				lsTime = s.perRun()
			} else if lsTime > 0 {
				b.ReportMetric(float64(s.perRun())/float64(lsTime), "x-of-ls")
			}
		})
	}
}

// populateS3 creates one session with a 4 KiB save through ckpt, then
// n-1 copies of its objects, uploaded with the SDK straight to the
// gateway, and backdates the copies' manifests over ten days through the
// gateway's directory (versitygw takes LastModified from the file).
func populateS3(b *testing.B, gw *s3test.Gateway, client *s3.Client, prefix string, n int) {
	ctx := b.Context()
	direct := s3Ref(b, gw, gw.Endpoint, prefix)
	id := ckptOut(b, direct, nil, "create", "--prefix", "bench")
	file := filepath.Join(b.TempDir(), "state")
	if err := os.WriteFile(file, randomBytes(4<<10), 0o600); err != nil {
		b.Fatal(err)
	}
	ckptOut(b, direct, nil, "save", id, file)
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &gw.Bucket, Prefix: aws.String(prefix + "/" + id + "/")})
	if err != nil {
		b.Fatal(err)
	}
	objects := map[string][]byte{}
	for _, o := range list.Contents {
		name := strings.TrimPrefix(aws.ToString(o.Key), prefix+"/"+id+"/")
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: &gw.Bucket, Key: o.Key})
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		objects[name] = data
	}
	if _, ok := objects[storage.CheckpointFile]; !ok {
		b.Fatalf("session %s has no manifest: %v", id, list.Contents)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range n - 1 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			for name, data := range objects {
				key := prefix + "/" + sessionID("copy", i) + "/" + name
				if _, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: &gw.Bucket, Key: &key, Body: bytes.NewReader(data)}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	now := time.Now()
	for i := range n - 1 {
		t := now.Add(-spread * time.Duration(i+1) / time.Duration(n))
		path := filepath.Join(gw.Dir, gw.Bucket, prefix, sessionID("copy", i), storage.CheckpointFile)
		if err := os.Chtimes(path, t, t); err != nil {
			b.Fatalf("backdate through the gateway's directory: %v", err)
		}
	}
	key := prefix + "/" + sessionID("copy", n-2) + "/" + storage.CheckpointFile
	head, err := client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &gw.Bucket, Key: &key})
	if err != nil {
		b.Fatal(err)
	}
	if age := time.Since(aws.ToTime(head.LastModified)); age < spread/2 {
		b.Logf("the gateway ignored the backdated mtime (LastModified %s ago): last cannot stop early", age)
	}
}

// BenchmarkS3ListScale times 'ckpt list', 'ckpt last' and 'ckpt gc
// --dry-run' over 1,000 S3 sessions through the counting proxy, without
// delay (and list and last with 20 ms added to each request), next to one ListObjectsV2
// pass over the prefix (all keys, two per session) with the bare SDK. It
// reports requests per session and the ratio to the listing (x-of-ListObjectsV2).
func BenchmarkS3ListScale(b *testing.B) {
	const n = 1000
	gw := startGateway(b)
	px := newS3Proxy(b, gw.Endpoint)
	ckptBinary(b)
	populateS3(b, gw, sdkClient(gw.Endpoint), "scale", n)
	ref := s3Ref(b, gw, px.URL, "scale")
	viaProxy := sdkClient(px.URL)
	// Warm the gateway's directory: list once before timing.
	if out := ckptOut(b, ref, nil, "list"); strings.Count(out, "\n") != n {
		b.Fatalf("ckpt list printed %d rows, want %d", strings.Count(out, "\n"), n)
	}
	for _, d := range []time.Duration{0, 20 * time.Millisecond} {
		var listTime time.Duration
		for _, t := range []struct {
			name  string
			run   func(b *testing.B) time.Duration
			quick bool // run with the delay too
		}{
			{"ListObjectsV2", func(b *testing.B) time.Duration {
				start := time.Now()
				p := s3.NewListObjectsV2Paginator(viaProxy, &s3.ListObjectsV2Input{Bucket: &gw.Bucket, Prefix: aws.String("scale/")})
				keys := 0
				for p.HasMorePages() {
					page, err := p.NextPage(b.Context())
					if err != nil {
						b.Fatal(err)
					}
					keys += len(page.Contents)
				}
				if keys < 2*n {
					b.Fatalf("listed %d keys, want at least %d", keys, 2*n)
				}
				return time.Since(start)
			}, true},
			{"list", ckptRun(ref, "list"), true},
			{"last", ckptRun(ref, "last"), true},
			// gc, one session at a time, would take minutes with the
			// delay: BenchmarkS3Verbs shows its round trips on ten.
			{"gc-dry-run-1h", ckptRun(ref, "gc", "--dry-run", "--older-than", "1h"), false},
			{"gc-dry-run-1s", ckptRun(ref, "gc", "--dry-run", "--older-than", "1s"), false},
		} {
			if d > 0 && !t.quick {
				continue
			}
			b.Run(fmt.Sprintf("delay=%s/%s", d, t.name), func(b *testing.B) {
				var total time.Duration
				var reqs reqStats
				for b.Loop() {
					px.take()
					px.setDelay(d)
					total += t.run(b)
					px.setDelay(0)
					reqs.add(px.take())
				}
				per := total / time.Duration(reqs.runs)
				b.ReportMetric(float64(per.Nanoseconds()), "ns/op")
				reqs.report(b)
				b.ReportMetric(float64(reqs.total)/float64(reqs.runs)/n, "requests/session")
				if t.name == "ListObjectsV2" {
					listTime = per
				} else if listTime > 0 {
					b.ReportMetric(float64(per)/float64(listTime), "x-of-ListObjectsV2")
				}
				if d == 0 {
					b.Logf("%s: %s", t.name, reqs.breakdown())
				}
			})
		}
	}
}

// ckptRun returns a run of ckpt with args, output to /dev/null, that
// returns how long it took.
func ckptRun(ref repoRef, args ...string) func(b *testing.B) time.Duration {
	return func(b *testing.B) time.Duration {
		c := ckptCmd(b, ref, args...)
		c.Stdout = devNull(b)
		return measure(b, c).elapsed
	}
}

// BenchmarkStepCost is 'ckpt step ID NAME -- true' (a new name each time,
// so that it runs) in three local sessions side by side: one just created,
// one with a 1 GiB payload saved, one with 10,000 earlier steps recorded.
// Step records live apart from the checkpoint, so the three should cost
// the same: it reports the median of each and their ratios to the empty
// session's (x-of-empty), and the median of 'ckpt steps' over the 10,000
// steps, and of 'ckpt version', the process floor. One iteration (ns/op)
// is a round: each command once, in an order that turns from round to
// round, so that noise on the machine hits all alike.
//
// The three sessions are on one file system, a tmpfs (/dev/shm) when there
// is one: the fixture records 10,000 steps, each fsynced, which takes
// several times as long on a disk. There an fsync costs nothing, so what a
// step does besides (read a payload, list other steps) is not hidden
// behind the disk's latency. The table also gives each step's own time,
// its median less that of 'ckpt version', and the ratio of those.
func BenchmarkStepCost(b *testing.B) {
	const size, steps = 1 << 30, 10_000
	ckptBinary(b)
	repo := filepath.Join(fixtureRoot(b), "repo")
	r, err := repository.Open(repo)
	if err != nil {
		b.Fatal(err)
	}
	empty, big, many := createSessions(b, r, "bench", size, steps)
	stepCostRounds(b, repoRef{loc: repo}, nil, empty, big, many, "1GiB", steps)
}

// BenchmarkS3StepCost is BenchmarkStepCost on an S3 repository (versitygw,
// through the counting proxy, no delay added), with a 64 MiB payload, not
// 1 GiB, and 1,000 earlier steps, not 10,000, to keep the fixture quick: it
// adds the requests of each run, and what they were.
func BenchmarkS3StepCost(b *testing.B) {
	const size, steps = 64 << 20, 1_000
	gw := startGateway(b)
	px := newS3Proxy(b, gw.Endpoint)
	ckptBinary(b)
	r, err := repository.OpenS3(b.Context(), gw.URL("stepcost"), gw.StoreOptions(s3store.Options{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("on S3 the payload is %d MiB, not 1 GiB, and the earlier steps %d, not 10,000", size>>20, steps)
	empty, big, many := createSessions(b, r, "bench", size, steps)
	stepCostRounds(b, s3Ref(b, gw, px.URL, "stepcost"), px, empty, big, many, "64MiB", steps)
}

// createSessions creates three sessions in r, made with the library: one
// left empty, one with a payload of size bytes saved, and one with steps
// steps recorded (started and passed).
func createSessions(b *testing.B, r *repository.Repository, prefix string, size int64, steps int) (empty, big, many string) {
	ctx := b.Context()
	create := func() *storage.Session {
		s, err := r.Create(ctx, repository.CreateOptions{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	empty = create().ID()
	s := create()
	big = s.ID()
	start := time.Now()
	if _, err := s.Save(ctx, io.LimitReader(zeros{}, size)); err != nil {
		b.Fatal(err)
	}
	saved := time.Since(start)
	s = create()
	many = s.ID()
	start = time.Now()
	recordSteps(b, r, many, steps)
	b.Logf("fixture: saved %d MiB in %v; recorded %d steps in %v", size>>20, saved.Round(time.Millisecond), steps, time.Since(start).Round(time.Millisecond))
	return empty, big, many
}

// recordSteps records n steps in session id, each started and passed
// through the library, 64 at a time, each goroutine with a session of
// its own.
func recordSteps(b *testing.B, r *repository.Repository, id string, n int) {
	ctx := b.Context()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			s, err := r.Open(ctx, id)
			if err != nil {
				errs <- err
				return
			}
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				name := fmt.Sprintf("earlier-%05d", i)
				c, err := s.StartStep(ctx, name, storage.StepOptions{Identity: checkpoint.Identity{Key: "bench", Command: []string{"true"}}, Command: "bench"})
				if err == nil && c.Action != storage.StepRun {
					err = fmt.Errorf("step %s: action %d, want it run", name, c.Action)
				}
				if err == nil {
					_, err = c.End(ctx, checkpoint.StepPassed, 0)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// stepCostRow is one command of a round of BenchmarkStepCost and what its
// runs cost.
type stepCostRow struct {
	label string // a metric's prefix: "empty", "1GiB", "10ksteps", "steps-10k"
	what  string // what the table says it is
	args  func(round string) []string
	step  bool // a step, compared with the one in the empty session
	s     procStats
	reqs  reqStats
}

// stepCostRounds times, in rounds, 'ckpt step ID NAME -- true' in each of
// the sessions empty, big (its payload called bigLabel) and many (which has
// steps steps), 'ckpt steps' of many, and 'ckpt version' (the process
// floor); with px, it counts each run's requests through it. It reports
// the medians and the ratios to the step in the empty session, and logs a
// table that adds the step's own time (its median above the floor's) and
// its ratio.
func stepCostRounds(b *testing.B, ref repoRef, px *s3Proxy, empty, big, many, bigLabel string, steps int) {
	stepIn := func(id string) func(string) []string {
		return func(round string) []string { return []string{"step", id, "bench-" + round, "--", "true"} }
	}
	k := fmt.Sprintf("%dk", steps/1000)
	if steps%1000 != 0 {
		k = strconv.Itoa(steps)
	}
	rows := []*stepCostRow{
		{label: "floor", what: "'ckpt version' (floor)", args: func(string) []string { return []string{"version"} }},
		{label: "empty", what: "step, empty session", args: stepIn(empty), step: true},
		{label: bigLabel, what: "step, " + bigLabel + " payload", args: stepIn(big), step: true},
		{label: k + "steps", what: fmt.Sprintf("step, %d earlier steps", steps), args: stepIn(many), step: true},
		{label: "steps-" + k, what: fmt.Sprintf("'ckpt steps', %d steps", steps), args: func(string) []string { return []string{"steps", many} }},
	}
	floor, base := rows[0], rows[1]
	if out := ckptOut(b, ref, nil, "steps", many); strings.Count(out, "\n") != steps {
		b.Fatalf("ckpt steps printed %d rows, want %d", strings.Count(out, "\n"), steps)
	}
	run := func(r *stepCostRow, round string) (procStats, []s3Request) {
		c := ckptCmd(b, ref, r.args(round)...)
		c.Stdout = devNull(b)
		px.take()
		s := measure(b, c)
		return s, px.take()
	}
	if px == nil {
		px = &s3Proxy{} // counts nothing
	}
	// One round to warm up: the binary, the page cache, the gateway.
	for _, r := range rows {
		run(r, "warm-up")
	}
	round := 0
	for b.Loop() {
		for j := range rows {
			r := rows[(round+j)%len(rows)]
			s, reqs := run(r, strconv.Itoa(round))
			r.s.add(s)
			r.reqs.add(reqs)
		}
		round++
	}
	var table strings.Builder
	fmt.Fprintf(&table, "%d rounds, medians:\n\t%-28s %9s %7s %9s %7s %9s %9s", round, "", "time", "x-empty", "own", "x-empty", "cpu/mean", "wchar-B")
	if base.reqs.total > 0 {
		fmt.Fprintf(&table, " %8s  %s", "requests", "of which")
	}
	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }
	for _, r := range rows {
		m, own := r.s.median(), r.s.median()-floor.s.median()
		b.ReportMetric(float64(m.Microseconds())/1000, r.label+"-ms")
		x, ownX := "-", "-"
		if r.step && r != base {
			b.ReportMetric(ratio(m, base.s.median()), r.label+"-x-of-empty")
			x = fmt.Sprintf("%.2f", ratio(m, base.s.median()))
			ownX = fmt.Sprintf("%.2f", ratio(own, base.s.median()-floor.s.median()))
		}
		if r == floor {
			own = 0
		}
		n := max(r.s.runs, 1)
		fmt.Fprintf(&table, "\n\t%-28s %9s %7s %9s %7s %9s %9d", r.what, m.Round(10*time.Microsecond), x,
			own.Round(10*time.Microsecond), ownX, (r.s.cpu / time.Duration(n)).Round(10*time.Microsecond), r.s.wchar/int64(n))
		if base.reqs.total > 0 {
			fmt.Fprintf(&table, " %8.4g  %s", float64(r.reqs.total)/float64(max(r.reqs.runs, 1)), r.reqs.breakdown())
		}
	}
	b.Log(table.String())
}
