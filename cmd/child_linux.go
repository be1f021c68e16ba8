package cmd

import (
	"bytes"
	"os"
	"strconv"
	"syscall"
	"time"
)

// setParentDeathSignal makes the kernel kill the command when ckpt dies, so
// that a SIGKILL of ckpt's process group, which no longer reaches the
// command's own group, does not leave it running.
func setParentDeathSignal(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }

// killLeftovers kills the processes of this host whose environment holds
// CKPT_ATTEMPT=token: what the command of an attempt whose ckpt died left
// running (the parent-death signal reaches the command, not its children).
// It waits up to 5 seconds for them to go, and returns how many there were.
func killLeftovers(token string) int {
	if token == "" {
		return 0
	}
	want := []byte("\x00CKPT_ATTEMPT=" + token + "\x00")
	des, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var pids []int
	for _, de := range des {
		pid, err := strconv.Atoi(de.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile("/proc/" + de.Name() + "/environ")
		if err == nil && bytes.Contains(append([]byte{0}, env...), want) {
			pids = append(pids, pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
	}
	return len(pids)
}
