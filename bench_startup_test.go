package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkStartup is what a local 'ckpt save' of 4 KiB costs as a process,
// next to the floor: internal/savefloor, a static Go program with none of
// ckpt's code that makes the system calls of such a save (read the file,
// create session.next, write, fsync, rename over session, fsync the
// directory) and nothing else. Three more processes place the difference:
// savefloor without arguments, which exits at once (what starting a Go
// program costs at all); the same built with the AWS SDK packages that
// ckpt links for S3 repositories (what their package initialisation costs
// every ckpt process, whatever the repository); and 'ckpt version' (what
// starting ckpt costs: its packages' initialisation and its command tree,
// no repository). All are built static, as make build builds ckpt.
//
// One iteration (ns/op) is a round: each process once, in an order that
// turns from round to round, so that noise on the machine hits all alike.
// The metrics are the median time of each (go-ms, go-sdk-ms, floor-ms,
// version-ms, save-ms) and save-ms over floor-ms (x-of-floor); the log has
// a table with each one's time after the Go program's, and its mean CPU
// time and minor page faults. Start-up is mostly first touches of the
// binary's pages and of a new heap, so the faults follow what a process
// initialises, and unlike the times they do not move with the load on the
// machine. GODEBUG=inittrace=1 ckpt ... shows where the initialisation
// goes.
func BenchmarkStartup(b *testing.B) {
	bin := b.TempDir()
	ckpt, floor, sdk := filepath.Join(bin, "ckpt"), filepath.Join(bin, "savefloor"), filepath.Join(bin, "savefloor-sdk")
	goBuild(b, ckpt, ".")
	goBuild(b, floor, "./internal/savefloor")
	goBuild(b, sdk, "./internal/savefloor", "-tags", "awssdk")

	home, work := b.TempDir(), b.TempDir()
	repo, floorDir := filepath.Join(work, "repo"), filepath.Join(work, "floor")
	if err := os.Mkdir(floorDir, 0o700); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(work, "state")
	if err := os.WriteFile(file, bytes.Repeat([]byte("0123456789abcdef"), 256), 0o600); err != nil {
		b.Fatal(err)
	}
	env := []string{"HOME=" + home, "XDG_CACHE_HOME=" + filepath.Join(home, "cache")}
	null := devNull(b)
	command := func(name string, args ...string) *exec.Cmd {
		c := exec.Command(name, args...)
		c.Env = env
		c.Stdout = null
		return c
	}
	var out strings.Builder
	create := command(ckpt, "--repo", repo, "create", "--prefix", "bench")
	create.Stdout = &out
	measure(b, create)
	id := strings.TrimSpace(out.String())

	rows := []*startupRow{
		{label: "go", what: "Go program that exits", args: []string{floor}},
		{label: "go-sdk", what: "the same, AWS SDK linked", args: []string{sdk}},
		{label: "floor", what: "savefloor 4 KiB (floor)", args: []string{floor, file, floorDir}},
		{label: "version", what: "ckpt version", args: []string{ckpt, "--repo", repo, "version"}},
		{label: "save", what: "ckpt save 4 KiB", args: []string{ckpt, "--repo", repo, "save", id, file}},
	}
	goRow, floorRow, saveRow := rows[0], rows[2], rows[4]
	// One round to warm up the page cache.
	for _, r := range rows {
		measure(b, command(r.args[0], r.args[1:]...))
	}
	round := 0
	for b.Loop() {
		for j := range rows {
			r := rows[(round+j)%len(rows)]
			c := command(r.args[0], r.args[1:]...)
			r.s.add(measure(b, c))
			r.faults += c.ProcessState.SysUsage().(*syscall.Rusage).Minflt
		}
		round++
	}

	ratio := func(a, b time.Duration) float64 { return float64(a) / float64(max(b, 1)) }
	var table strings.Builder
	fmt.Fprintf(&table, "%d rounds, medians:\n\t%-26s %9s %7s %9s %7s %9s %7s",
		round, "", "time", "x-floor", "after-go", "x-floor", "cpu/mean", "faults")
	for _, r := range rows {
		m, own := r.s.median(), r.s.median()-goRow.s.median()
		b.ReportMetric(float64(m.Microseconds())/1000, r.label+"-ms")
		n := max(r.s.runs, 1)
		fmt.Fprintf(&table, "\n\t%-26s %9s %7.2f %9s %7.2f %9s %7d", r.what, m.Round(10*time.Microsecond),
			ratio(m, floorRow.s.median()), own.Round(10*time.Microsecond), ratio(own, floorRow.s.median()-goRow.s.median()),
			(r.s.cpu / time.Duration(n)).Round(10*time.Microsecond), r.faults/int64(n))
	}
	b.ReportMetric(ratio(saveRow.s.median(), floorRow.s.median()), "x-of-floor")
	b.Log(table.String())
}

// startupRow is one of the processes BenchmarkStartup compares.
type startupRow struct {
	label, what string
	args        []string
	s           procStats
	faults      int64 // minor page faults, summed over runs
}

// goBuild builds the main package pkg into out as make build does: static,
// without cgo.
func goBuild(tb testing.TB, out, pkg string, flags ...string) {
	tb.Helper()
	c := exec.Command("go", append(append([]string{"build", "-o", out}, flags...), pkg)...)
	c.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := c.CombinedOutput(); err != nil {
		tb.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}
