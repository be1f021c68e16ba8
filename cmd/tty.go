package cmd

import (
	"io"
	"syscall"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether w is a terminal: a file whose window size can
// be asked for, as on every Unix only a terminal's can. A terminal that is
// not ckpt's controlling terminal counts too. It goes through SyscallConn,
// not Fd, which would put the file in blocking mode.
func isTerminal(w io.Writer) bool {
	f, ok := w.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		_, ioctlErr = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	}); err != nil {
		return false
	}
	return ioctlErr == nil
}
