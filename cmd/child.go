package cmd

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// childWaitDelay is how long ckpt waits, after a command it ran exits, for
// processes the command left behind to close its output. Without a bound, a
// daemon started by the command that inherited its stdout would hold ckpt
// open for as long as it runs.
const childWaitDelay = 5 * time.Second

// runChild starts c and waits for it, passing on the signals that arrive on
// sigs (except a Ctrl-C the terminal already sent it). It returns c's exit
// status (128+N if signal N killed it), the last signal passed on, and an
// error only if c could not be started.
func (a *app) runChild(c *exec.Cmd, sigs <-chan os.Signal) (int, os.Signal, error) {
	c.WaitDelay = childWaitDelay
	if err := c.Start(); err != nil {
		return 0, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var sig os.Signal
	for {
		select {
		case sig = <-sigs:
			if !a.fromTerminal(sig) {
				_ = c.Process.Signal(sig) // fails only if it has exited
			}
		case err := <-done:
			return a.exitCode(c, err), sig, nil
		}
	}
}

// fromTerminal reports whether sig is a Ctrl-C from the terminal ckpt runs
// in the foreground of: the terminal sent it to the whole foreground process
// group, CMD included, and passing it on would make CMD see it twice.
func (a *app) fromTerminal(sig os.Signal) bool {
	in, ok := a.io.In.(*os.File)
	if sig != syscall.SIGINT || !ok {
		return false
	}
	pgrp, err := unix.IoctlGetInt(int(in.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == ownGroup()
}

// signalRepeat is how soon after a signal the same signal counts as a
// repeat of it, not passed on again.
const signalRepeat = 250 * time.Millisecond

// forwardedSignals are the signals 'ckpt step' passes on to CMD.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// runChildGroup is runChild for 'ckpt step', so that the command gets each
// signal once. Run from a script, a CI runner or timeout(1), the command
// runs in a process group of its own: a signal sent to ckpt's process group
// (timeout(1) sends SIGTERM to its child, then to its whole group) reaches
// ckpt alone, and ckpt passes it on to the command's group once. Run in the
// foreground of a terminal, the command stays in ckpt's group, so that
// Ctrl-C and Ctrl-Z reach it directly and job control works; ckpt then
// passes on every signal but the terminal's Ctrl-C. The command is killed if
// ckpt dies (where the system offers it: Linux).
func (a *app) runChildGroup(c *exec.Cmd, sigs <-chan os.Signal) (int, os.Signal, error) {
	c.WaitDelay = childWaitDelay
	attr := &syscall.SysProcAttr{}
	_, interactive := a.foreground()
	attr.Setpgid = !interactive
	// The parent-death signal is sent when the thread that started the
	// command exits: this goroutine keeps its thread until the command is
	// reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	setParentDeathSignal(attr)
	c.SysProcAttr = attr
	if err := c.Start(); err != nil {
		return 0, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	var (
		sig  os.Signal
		last = map[os.Signal]time.Time{}
	)
	for {
		select {
		case sig = <-sigs:
			// timeout(1) signals its child, then its whole group: ckpt,
			// its child, gets the signal twice within a moment. One is
			// passed on.
			if t, ok := last[sig]; ok && time.Since(t) < signalRepeat {
				continue
			}
			last[sig] = time.Now()
			switch {
			case interactive && (a.fromTerminal(sig) || sig == syscall.SIGHUP):
				// The terminal sent it to its foreground group,
				// CMD included (a Ctrl-C, a hangup).
			case interactive:
				_ = c.Process.Signal(sig)
			default:
				// The group, as a terminal or a process-group kill
				// would: the command's own children get it too.
				_ = unix.Kill(-c.Process.Pid, sig.(syscall.Signal))
			}
		case err := <-done:
			return a.exitCode(c, err), sig, nil
		}
	}
}

// exitCode returns the exit status of c, which has been waited for: 128+N
// if signal N killed it.
func (a *app) exitCode(c *exec.Cmd, err error) int {
	code := c.ProcessState.ExitCode()
	if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if err != nil && code == 0 {
		// It passed, but its output was cut short.
		a.warn("%s exited with status 0, but its output was not all copied: %s", c.Path, message(err))
	}
	return code
}

// foreground returns the terminal on ckpt's stdin when ckpt's process
// group is its foreground group.
func (a *app) foreground() (int, bool) {
	in, ok := a.io.In.(*os.File)
	if !ok {
		return 0, false
	}
	fd := int(in.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	return fd, err == nil && pgrp == ownGroup()
}

// ownGroup returns ckpt's process group.
func ownGroup() int {
	pgid, _ := unix.Getpgid(0) // cannot fail for this process
	return pgid
}
