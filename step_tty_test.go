package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A Ctrl-C typed at the terminal reaches the whole foreground process group,
// ckpt step and its command alike. ckpt step records the step as
// interrupted and exits with the command's status, and does not send the
// command a second SIGINT.
func TestStepCtrlCAtTerminal(t *testing.T) {
	ckpt, err := exec.LookPath("ckpt")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := append(os.Environ(),
		"HOME="+filepath.Join(dir, "home"),
		"XDG_CACHE_HOME="+filepath.Join(dir, "cache"),
		"CKPT_REPOSITORY="+filepath.Join(dir, "sessions"),
		"CKPT_SESSION=",
	)
	run := func(args ...string) []byte {
		t.Helper()
		c := exec.Command(ckpt, args...)
		c.Env, c.Dir = env, dir
		out, err := c.Output()
		if err != nil {
			t.Fatalf("ckpt %v: %v", args, err)
		}
		return bytes.TrimSpace(out)
	}
	id := string(run("create", "--prefix", "tty"))

	ptmx, pts := openPTY(t)
	// The command notes each SIGINT; after the first it waits a little for
	// a second one, then exits 130. It gives up after 30 seconds.
	script := `trap 'echo INT >> trapped' INT
echo ready > ready
i=0
while [ ! -s trapped ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done
sleep 0.5
exit 130`
	c := exec.Command(ckpt, "step", id, "ctrl-c", "--", "sh", "-c", script)
	c.Env, c.Dir = env, dir
	var stderr bytes.Buffer
	c.Stdin, c.Stderr = pts, &stderr
	// ckpt leads a new session whose controlling terminal is the pty, as a
	// shell's foreground job does.
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, "ready")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			c.Process.Kill()
			t.Fatalf("the step's command did not start; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := ptmx.Write([]byte{0x03}); err != nil { // ^C
		t.Fatal(err)
	}
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		c.Process.Kill()
		t.Fatal("ckpt step did not end after ^C")
	}
	if got := c.ProcessState.ExitCode(); got != 130 {
		t.Errorf("ckpt step exited %d (%v), want 130; stderr:\n%s", got, err, stderr.String())
	}
	trapped, err := os.ReadFile(filepath.Join(dir, "trapped"))
	if err != nil {
		t.Fatal(err)
	}
	if string(trapped) != "INT\n" {
		t.Errorf("the command saw %q, want one SIGINT", trapped)
	}
	var steps []struct {
		Name  string
		State string
		Exit  *int
	}
	if err := json.Unmarshal(run("steps", id, "--json"), &steps); err != nil {
		t.Fatal(err)
	}
	if len(steps) != 1 || steps[0].State != "interrupted" || steps[0].Exit == nil || *steps[0].Exit != 130 {
		t.Errorf("steps = %+v, want ctrl-c interrupted with exit 130", steps)
	}
}
