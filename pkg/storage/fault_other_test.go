//go:build !linux

package storage

import "testing"

// mountSmallTmpfs skips t: fault_linux_test.go mounts the small tmpfs with
// Linux's mount(2) and its size= option.
func mountSmallTmpfs(t *testing.T, mnt string) {
	t.Helper()
	t.Skipf("skipped: mounting a 1 MiB tmpfs on %s is done the Linux way (mount(2) with size=)", mnt)
}
