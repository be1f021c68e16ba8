package main

// What the benchmarks and tests read from, or ask of, Linux in particular:
// a process's I/O counters in /proc/PID/io, read before it is reaped
// (waitid with WNOWAIT); whether /dev/shm is a tmpfs; a parent-death
// signal. proc_other_test.go has what other systems get instead.

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// measure runs c and returns what it cost: how long until it exited, and
// its I/O counters, read from /proc before it is reaped. It fails tb if c
// fails.
func measure(tb testing.TB, c *exec.Cmd) procStats {
	tb.Helper()
	var stderr strings.Builder
	if c.Stderr == nil {
		c.Stderr = &stderr
	}
	start := time.Now()
	if err := c.Start(); err != nil {
		tb.Fatalf("%s: %v", strings.Join(c.Args, " "), err)
	}
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	s := procStats{runs: 1, elapsed: time.Since(start)}
	s.times = []time.Duration{s.elapsed}
	counters, ioErr := os.ReadFile(fmt.Sprintf("/proc/%d/io", c.Process.Pid))
	if err := c.Wait(); err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(c.Args, " "), err, stderr.String())
	}
	if ioErr != nil {
		tb.Fatalf("read the I/O counters of %s: %v", c.Args[0], ioErr)
	}
	for line := range strings.Lines(string(counters)) {
		k, v, _ := strings.Cut(line, ":")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "wchar":
			s.wchar = n
		case "write_bytes":
			s.writeBytes = n
		case "syscw":
			s.syscw = n
		}
	}
	s.maxRSS = maxRSS(c.ProcessState)
	s.cpu = c.ProcessState.UserTime() + c.ProcessState.SystemTime()
	return s
}

// maxRSS returns the peak resident set of the process that ended, in bytes
// (Linux counts ru_maxrss in KiB).
func maxRSS(ps *os.ProcessState) int64 {
	return ps.SysUsage().(*syscall.Rusage).Maxrss * 1024
}

// fixtureRoot returns a directory removed when tb ends, on a tmpfs if
// /dev/shm is one with 2 GiB free, else tb's temporary directory.
func fixtureRoot(tb testing.TB) string {
	var st unix.Statfs_t
	if unix.Statfs("/dev/shm", &st) != nil || st.Type != unix.TMPFS_MAGIC || st.Bavail*uint64(st.Bsize) < 2<<30 {
		return tb.TempDir()
	}
	dir, err := os.MkdirTemp("/dev/shm", "ckpt-bench-")
	if err != nil {
		return tb.TempDir()
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// groupProcAttr puts a child in a process group of its own, which the test
// signals as a whole, and makes the kernel kill it when the test binary
// dies.
func groupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
