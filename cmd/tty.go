package cmd

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// isTerminal reports whether stream is a terminal: a file whose window
// size can be asked for, as on every Unix only a terminal's can. A terminal
// that is not ckpt's controlling terminal counts too.
func isTerminal(stream any) bool {
	_, ok := winsize(stream)
	return ok
}

// terminalWidth returns how many columns the terminal stream shows; a
// stream that is not a terminal, or one that does not say, is taken as 80
// wide.
func terminalWidth(stream any) int {
	if ws, ok := winsize(stream); ok && ws.Col > 0 {
		return int(ws.Col)
	}
	return 80
}

// winsize asks for stream's window size. It goes through SyscallConn, not
// Fd, which would put the file in blocking mode.
func winsize(stream any) (*unix.Winsize, bool) {
	f, ok := stream.(interface {
		SyscallConn() (syscall.RawConn, error)
	})
	if !ok {
		return nil, false
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, false
	}
	var (
		ws       *unix.Winsize
		ioctlErr error
	)
	if err := rc.Control(func(fd uintptr) {
		ws, ioctlErr = unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ)
	}); err != nil || ioctlErr != nil {
		return nil, false
	}
	return ws, true
}
