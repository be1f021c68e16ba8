package storage

import (
	"syscall"
	"testing"
)

// mountSmallTmpfs mounts a 1 MiB tmpfs on mnt for the rest of t, or skips t
// if it cannot.
func mountSmallTmpfs(t *testing.T, mnt string) {
	t.Helper()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, 0) })
}
