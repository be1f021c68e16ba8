package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// CreateGrace is how long a session.next without a readable owner is presumed
// to belong to a writer between its create and its flock. Past it, a free
// flock proves the writer is gone.
const CreateGrace = 5 * time.Second

var hostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown-host"
	}
	return h
})

var username = sync.OnceValue(func() string {
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
})

// CurrentOwner returns the owner record of this process, running command,
// for a lock taken at now.
func CurrentOwner(command string, now time.Time) *checkpoint.Owner {
	if len(command) > 256 {
		command = command[:256]
	}
	return &checkpoint.Owner{
		PID:     os.Getpid(),
		Host:    hostname(),
		User:    username(),
		Started: now.UTC(),
		Command: strings.ToValidUTF8(command, "?"),
	}
}

// processGone reports whether o ran on this host under a pid that no longer
// exists.
func processGone(o *checkpoint.Owner) bool {
	if o == nil || o.Host != hostname() || o.PID <= 0 {
		return false
	}
	return errors.Is(unix.Kill(o.PID, 0), syscall.ESRCH)
}

// inspectLock reports the lock held through the session.next at path, nil if
// there is none.
func inspectLock(path string, now time.Time) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, syscall.ELOOP):
		return &Lock{Stale: true, Reason: "session.next is a symbolic link, not a writer's file"}, nil
	case err != nil:
		return nil, err
	}
	defer f.Close()
	return inspectLockFile(f, path, now)
}

// inspectLockFile judges the lock file f, opened as path.
func inspectLockFile(f *os.File, path string, now time.Time) (*Lock, error) {
	// A shared probe: it fails while a writer holds its exclusive flock.
	state := probeFlock(f, unix.LOCK_SH)
	if state == flockFree {
		defer unix.Flock(int(f.Fd()), unix.LOCK_UN)
		// A writer that committed since we opened the file renamed it to
		// session and let go of its flock: what we hold is no lock.
		if !sameFile(f, path) {
			return nil, nil
		}
	}
	return judgeLock(f, state, now)
}

type flockState int

const (
	flockHeld    flockState = iota // some process holds it: the writer lives
	flockFree                      // we took it: no writer holds it
	flockUnknown                   // the file system cannot tell
)

// probeFlock tries to take f's flock (unix.LOCK_SH or LOCK_EX) without
// blocking, and keeps it if it is free.
func probeFlock(f *os.File, how int) flockState {
	switch err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB); {
	case err == nil:
		return flockFree
	case errors.Is(err, unix.EWOULDBLOCK):
		return flockHeld
	default:
		return flockUnknown
	}
}

// judgeLock decides whether the lock file f, whose flock is in the given
// state, is stale. A held flock always means a live writer, even one whose
// pid this process cannot see (another pid namespace sharing the volume).
// Only where flock cannot tell is a vanished pid on this host taken as proof.
func judgeLock(f *os.File, state flockState, now time.Time) (*Lock, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	l := &Lock{Since: fi.ModTime()}
	if !fi.Mode().IsRegular() {
		l.Stale, l.Reason = true, "session.next is not a regular file"
		return l, nil
	}
	if h, _, err := checkpoint.ReadHeader(f); err == nil {
		l.Owner = h.Owner
	}
	switch {
	case state == flockHeld:
		l.Reason = "its writer holds the flock"
	case state == flockUnknown && processGone(l.Owner):
		l.Stale, l.Reason = true, "its writer's pid no longer exists on this host"
	case state == flockUnknown:
		l.Reason = "flock cannot tell on this file system whether its writer lives"
	case l.Owner != nil:
		l.Stale, l.Reason = true, "no process holds its flock"
	case now.Sub(fi.ModTime()) > CreateGrace:
		l.Stale, l.Reason = true, "no process holds its flock and it names no owner"
	default:
		l.Reason = "it is being created"
	}
	return l, nil
}

// sameFile reports whether path still names the file open as f.
func sameFile(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

func (d *Dir) lockedError(name string) error {
	l, err := inspectLock(d.file(name), d.now())
	if err != nil {
		return fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	if l == nil {
		// The writer finished between our link and our look.
		l = &Lock{Reason: "another writer was saving"}
	}
	return &LockedError{Session: d.id, Lock: *l}
}

// lockHeld reports whether some process holds an flock on the file at path.
func lockHeld(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}
