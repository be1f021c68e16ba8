package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// BenchmarkFleetS3 runs a fleet as CI nodes would: 8 'ckpt queue' runners
// over 200 steps of 100 ms each, against versitygw through a proxy that adds
// 20 ms to each request, and reports the makespan next to the ideal (the
// steps' total over the runners), the claim overhead per step (what each
// step cost a runner beyond its own 100 ms) and the requests per step.
func BenchmarkFleetS3(b *testing.B) {
	const (
		runners  = 8
		steps    = 200
		stepTime = 100 * time.Millisecond
		delay    = 20 * time.Millisecond
	)
	gw := startGateway(b)
	px := newS3Proxy(b, gw.Endpoint)
	bin := ckptBinary(b)
	dir := b.TempDir()
	var names []string
	for i := range steps {
		names = append(names, fmt.Sprintf("test-%03d", i))
	}
	list := filepath.Join(dir, "steps.txt")
	if err := os.WriteFile(list, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		ref := s3Ref(b, gw, px.URL, fmt.Sprintf("fleet-%d", i))
		env := append(s3test.Environ(os.Environ(), ref.env...), "CKPT_REPOSITORY="+ref.loc)
		create := exec.Command(bin, "create", "--prefix", "fleet")
		create.Env = env
		out, err := create.Output()
		if err != nil {
			b.Fatalf("create: %v", err)
		}
		id := strings.TrimSpace(string(out))
		px.setDelay(delay)
		px.take()
		start := time.Now()
		cmds := make([]*exec.Cmd, runners)
		for r := range runners {
			c := exec.Command(bin, "queue", id, "--from", list, "--runner", fmt.Sprintf("runner-%d", r+1), "--", "sleep", "0.1")
			c.Env = env
			if err := c.Start(); err != nil {
				b.Fatal(err)
			}
			cmds[r] = c
		}
		for _, c := range cmds {
			if err := c.Wait(); err != nil {
				b.Fatalf("a runner: %v", err)
			}
		}
		makespan := time.Since(start)
		reqs := len(px.take())
		px.setDelay(0)
		ideal := steps * stepTime / runners
		overhead := (makespan*runners - steps*stepTime) / steps
		b.ReportMetric(makespan.Seconds(), "makespan-s")
		b.ReportMetric(ideal.Seconds(), "ideal-s")
		b.ReportMetric(float64(overhead.Milliseconds()), "overhead-ms/step")
		b.ReportMetric(float64(reqs)/steps, "requests/step")
		b.Logf("%d runners, %d steps of %s, %s added to each request: makespan %s, ideal %s (%.2f×); "+
			"overhead %s a step (%.1f requests a step, ~%s of round trips at %s each)",
			runners, steps, stepTime, delay, makespan.Round(time.Millisecond), ideal, float64(makespan)/float64(ideal),
			overhead.Round(time.Millisecond), float64(reqs)/steps, time.Duration(float64(reqs)/steps*float64(delay)).Round(time.Millisecond), delay)
	}
}
