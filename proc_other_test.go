//go:build !linux

package main

// What other systems get in place of proc_linux_test.go's: no /proc/PID/io
// to read a process's I/O counters from, no tmpfs known to be at /dev/shm,
// no parent-death signal.

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// measure runs c and returns what it cost: how long until it exited, its
// CPU time and peak RSS. It fails tb if c fails. The I/O counters stay
// zero: Linux's /proc/PID/io, where they are read from, is not here.
func measure(tb testing.TB, c *exec.Cmd) procStats {
	tb.Helper()
	var stderr strings.Builder
	if c.Stderr == nil {
		c.Stderr = &stderr
	}
	start := time.Now()
	if err := c.Run(); err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(c.Args, " "), err, stderr.String())
	}
	s := procStats{runs: 1, elapsed: time.Since(start)}
	s.times = []time.Duration{s.elapsed}
	s.maxRSS = maxRSS(c.ProcessState)
	s.cpu = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	return s
}

// maxRSS returns the peak resident set of the process that ended, in bytes:
// ru_maxrss is in bytes on macOS, in KiB on the BSDs.
func maxRSS(ps *os.ProcessState) int64 {
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return 0
	}
	if runtime.GOOS == "darwin" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) * 1024
}

// fixtureRoot returns a directory removed when tb ends: tb's temporary
// directory.
func fixtureRoot(tb testing.TB) string { return tb.TempDir() }

// groupProcAttr puts a child in a process group of its own, which the test
// signals as a whole. Without a parent-death signal, a child outlives a test
// binary that is killed; the test's cleanup kills it otherwise.
func groupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
