package cmd

import (
	"os"
	"os/exec"
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
			code := c.ProcessState.ExitCode()
			if ws, ok := c.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
				code = 128 + int(ws.Signal())
			}
			if err != nil && code == 0 {
				// It passed, but its output was cut short.
				a.warn("%s exited with status 0, but its output was not all copied: %s", c.Path, message(err))
			}
			return code, sig, nil
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
	return err == nil && pgrp == unix.Getpgrp()
}
