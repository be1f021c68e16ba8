package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the script of 'make demo' against the ckpt that TestMain puts on
// $PATH, so that the demo cannot rot: it exits non-zero when anything it
// shows is not what it expects.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("the demo takes a few seconds")
	}
	for _, tool := range []string{"sh", "setsid"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the demo needs %s: %v", tool, err)
		}
	}
	tmp := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, "sh", filepath.Join("testdata", "demo.sh"))
	c.Env = append(os.Environ(),
		"HOME="+filepath.Join(tmp, "home"),
		"XDG_CACHE_HOME="+filepath.Join(tmp, "cache"),
		"TMPDIR="+tmp,
	)
	if os.Getenv("GORACE") == "" {
		// A race-enabled ckpt would sleep 1s before each exit.
		c.Env = append(c.Env, "GORACE=atexit_sleep_ms=10")
	}
	c.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("demo.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "=== OK: ") {
		t.Fatalf("demo.sh exited 0 without its OK line:\n%s", out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the demo took %s, more than the 30s it promises", d)
	}
	des, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		if strings.HasPrefix(de.Name(), "ckpt-demo.") {
			t.Errorf("the demo left %s behind", de.Name())
		}
	}
}
