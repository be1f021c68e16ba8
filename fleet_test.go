package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// fleetRig runs ckpt processes against one repository: a local directory or
// a prefix of the shared versitygw.
type fleetRig struct {
	t    *testing.T
	ckpt string
	dir  string
	env  []string
	s3   bool
}

// fleetBackends runs f on a local repository and on S3.
func fleetBackends(t *testing.T, f func(t *testing.T, r *fleetRig)) {
	t.Run("local", func(t *testing.T) {
		home := t.TempDir()
		env := append(s3test.Environ(os.Environ()),
			"HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, "cache"),
			"CKPT_REPOSITORY="+filepath.Join(home, "sessions"), "CKPT_SESSION=", "CKPT_KEY=",
			"GORACE="+cmp.Or(os.Getenv("GORACE"), "atexit_sleep_ms=10"))
		f(t, &fleetRig{t: t, ckpt: ckptBinary(t), dir: t.TempDir(), env: env})
	})
	t.Run("s3", func(t *testing.T) {
		gw := s3test.Shared(t)
		home := t.TempDir()
		env := s3test.Environ(os.Environ(), gw.Env(home)...)
		env = append(env, "CKPT_REPOSITORY="+gw.URL("fleet-"+strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))+fmt.Sprint(time.Now().UnixNano())),
			"CKPT_S3_LEASE=2s", "CKPT_SESSION=", "CKPT_KEY=",
			"GORACE="+cmp.Or(os.Getenv("GORACE"), "atexit_sleep_ms=10"))
		f(t, &fleetRig{t: t, ckpt: ckptBinary(t), dir: t.TempDir(), env: env, s3: true})
	})
}

func (r *fleetRig) command(extraEnv []string, args ...string) *exec.Cmd {
	c := exec.Command(r.ckpt, args...)
	c.Env = append(slices.Clone(r.env), extraEnv...)
	c.Dir = r.dir
	return c
}

func (r *fleetRig) run(args ...string) string {
	r.t.Helper()
	var stderr bytes.Buffer
	c := r.command(nil, args...)
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		r.t.Fatalf("ckpt %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// runner is one 'ckpt queue' process.
type runner struct {
	name   string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	err    error
	done   chan struct{}
}

// startRunners starts n 'ckpt queue' runners over the list in file, named
// runner-<first>, runner-<first+1>…, each running argv, with $RUNNER set to
// its name for CMD to see.
func (r *fleetRig) startRunners(n, first int, id, file string, argv ...string) []*runner {
	var out []*runner
	for i := first; i < first+n; i++ {
		rn := &runner{name: fmt.Sprintf("runner-%d", i), done: make(chan struct{})}
		args := append([]string{"queue", id, "--from", file, "--runner", rn.name, "--"}, argv...)
		rn.cmd = r.command([]string{"RUNNER=" + rn.name}, args...)
		rn.cmd.Stderr = &rn.stderr
		if err := rn.cmd.Start(); err != nil {
			r.t.Fatal(err)
		}
		go func() { rn.err = rn.cmd.Wait(); close(rn.done) }()
		out = append(out, rn)
	}
	return out
}

func waitRunners(t *testing.T, rs []*runner, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for _, rn := range rs {
		select {
		case <-rn.done:
		case <-deadline:
			for _, rn := range rs {
				rn.cmd.Process.Kill()
			}
			t.Fatalf("the runners did not end within %s", limit)
		}
	}
}

type stepRecord struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Exit       *int      `json:"exit"`
	Attempts   int       `json:"attempts"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
}

func (r *fleetRig) steps(id string) []stepRecord {
	r.t.Helper()
	var steps []stepRecord
	if err := json.Unmarshal([]byte(r.run("steps", id, "--json")), &steps); err != nil {
		r.t.Fatal(err)
	}
	return steps
}

// runsOf returns how often each step's CMD started, from the lines
// "RUNNER STEP" the commands append to file.
func runsOf(t *testing.T, file string) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string][]string{}
	for line := range strings.Lines(string(data)) {
		who, step, ok := strings.Cut(strings.TrimSpace(line), " ")
		if ok {
			runs[step] = append(runs[step], who)
		}
	}
	return runs
}

func writeList(t *testing.T, dir string, names []string) string {
	t.Helper()
	file := filepath.Join(dir, "steps.txt")
	if err := os.WriteFile(file, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// Four runners over 40 steps of known durations run every step exactly
// once, and finish within 1.2× of the ideal: the larger of the total over
// four and the longest step.
func TestFleetExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a fleet for about 14 seconds on each backend")
	}
	if raceEnabled {
		t.Skip("a timing test: make test runs it without the race detector, on a quiet machine")
	}
	fleetBackends(t, func(t *testing.T, r *fleetRig) {
		id := r.run("create", "--prefix", "fleet")
		var names []string
		durations := map[string]time.Duration{}
		var total, longest time.Duration
		for i := range 40 {
			d := time.Second + time.Duration((i*7)%40)*10*time.Millisecond
			name := fmt.Sprintf("test-%02d-%.2f", i, d.Seconds())
			names = append(names, name)
			durations[name] = d
			total += d
			longest = max(longest, d)
		}
		// Longest first, as 'ckpt queue' orders a list once it knows the
		// durations (queue.txtar tests that order).
		slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(durations[b], durations[a]) })
		list := writeList(t, r.dir, names)
		// Each step sleeps its own duration, which its name carries
		// (test-NN-SECONDS).
		script := `echo "$RUNNER $CKPT_STEP" >> runs; sleep ${CKPT_STEP##*-}`
		t0 := time.Now()
		rs := r.startRunners(4, 1, id, list, "sh", "-c", script)
		waitRunners(t, rs, 2*time.Minute)
		wall := time.Since(t0)
		for _, rn := range rs {
			if rn.err != nil {
				t.Errorf("%s: %v\n%s", rn.name, rn.err, rn.stderr.String())
			}
		}
		runs := runsOf(t, filepath.Join(r.dir, "runs"))
		lanes := map[string]int{}
		for _, name := range names {
			if len(runs[name]) != 1 {
				t.Errorf("step %s ran %d times (%v), want once", name, len(runs[name]), runs[name])
			}
			for _, who := range runs[name] {
				lanes[who]++
			}
		}
		if len(lanes) != 4 {
			t.Errorf("runs per runner = %v, want the four runners to share the steps", lanes)
		}
		steps := r.steps(id)
		var first, last time.Time
		for _, st := range steps {
			if st.State != "passed" || st.Attempts != 1 {
				t.Errorf("step %s: %s after %d attempts, want passed after 1", st.Name, st.State, st.Attempts)
			}
			end := st.Started.Add(time.Duration(st.DurationMS) * time.Millisecond)
			if first.IsZero() || st.Started.Before(first) {
				first = st.Started
			}
			if end.After(last) {
				last = end
			}
		}
		if len(steps) != len(names) {
			t.Errorf("%d steps recorded, want %d", len(steps), len(names))
		}
		ideal := max(total/4, longest)
		t.Logf("ideal %s, makespan by the records %s (%.2f×), wall time of the fleet %s (%.2f×)",
			ideal, last.Sub(first).Round(time.Millisecond), float64(last.Sub(first))/float64(ideal),
			wall.Round(time.Millisecond), float64(wall)/float64(ideal))
		if wall > ideal*12/10 {
			t.Errorf("the fleet took %s, more than 1.2× the ideal %s", wall.Round(time.Millisecond), ideal)
		}
		// 'ckpt wait' sees every step ended, all passed.
		r.run("wait", id, "--from", list, "--timeout", "10s")
	})
}

// A runner killed with SIGKILL mid-step: its claim turns stale (at once
// locally, after the lease on S3), another runner takes the step over, the
// killed attempt is recorded crashed, and every step ends passed.
func TestFleetRunnerKilled(t *testing.T) {
	fleetBackends(t, func(t *testing.T, r *fleetRig) {
		id := r.run("create", "--prefix", "fleet")
		var names []string
		for i := range 16 {
			names = append(names, fmt.Sprintf("step-%02d", i))
		}
		list := writeList(t, r.dir, names)
		script := `echo "$RUNNER $CKPT_STEP" >> runs; if [ "$RUNNER" = runner-2 ]; then touch victim-started; sleep 30; fi; sleep 0.3`
		rs := r.startRunners(4, 1, id, list, "sh", "-c", script)
		waitFor(t, filepath.Join(r.dir, "victim-started"), 30*time.Second)
		victim := rs[1]
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-victim.done
		waitRunners(t, []*runner{rs[0], rs[2], rs[3]}, 2*time.Minute)
		var killed string
		for step, who := range runsOf(t, filepath.Join(r.dir, "runs")) {
			if slices.Contains(who, "runner-2") {
				killed = step
			}
		}
		if killed == "" {
			t.Fatal("runner-2 ran no step")
		}
		var stderr string
		for _, rn := range []*runner{rs[0], rs[2], rs[3]} {
			if rn.err != nil {
				t.Errorf("%s: %v\n%s", rn.name, rn.err, rn.stderr.String())
			}
			stderr += rn.stderr.String()
		}
		if !strings.Contains(stderr, "step "+killed+": attempt 1, started ") || !strings.Contains(stderr, "(ckpt queue) since") {
			t.Errorf("no runner reported the crashed attempt of %s:\n%s", killed, stderr)
		}
		for _, st := range r.steps(id) {
			want := 1
			if st.Name == killed {
				want = 2
			}
			if st.State != "passed" || st.Attempts != want {
				t.Errorf("step %s: %s after %d attempts, want passed after %d", st.Name, st.State, st.Attempts, want)
			}
		}
	})
}

// On S3, a runner paused (SIGSTOP) past its lease loses its step to
// another runner; when it goes on, its end is refused: it never records a
// result over the new attempt.
func TestFleetPausedRunner(t *testing.T) {
	fleetBackends(t, func(t *testing.T, r *fleetRig) {
		if !r.s3 {
			t.Skip("locally a paused runner keeps its flock, so its claim stays live")
		}
		id := r.run("create", "--prefix", "fleet")
		list := writeList(t, r.dir, []string{"a", "b", "c", "d"})
		// runner-1's first step signals that it started, then waits for
		// 'resume' (made once the step was taken over) and fails: a
		// result the records must not take. (On one host, the runner that
		// takes the step over kills it first, as what a dead attempt left
		// running; across hosts it would run on.)
		script := `echo "$RUNNER $CKPT_STEP" >> runs
if [ "$RUNNER" = runner-1 ] && [ ! -e victim-started ]; then touch victim-started; while [ ! -e resume ]; do sleep 0.1; done; exit 7; fi
sleep 0.2`
		rs := r.startRunners(1, 1, id, list, "sh", "-c", script)
		victim := rs[0]
		waitFor(t, filepath.Join(r.dir, "victim-started"), 30*time.Second)
		if err := victim.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		mu.Lock()
		others := r.startRunners(1, 2, id, list, "sh", "-c", script)
		mu.Unlock()
		others[0].name = "runner-1b"
		waitRunners(t, others, 2*time.Minute)
		if others[0].err != nil {
			t.Fatalf("the runner that took over: %v\n%s", others[0].err, others[0].stderr.String())
		}
		if err := os.WriteFile(filepath.Join(r.dir, "resume"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := victim.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		waitRunners(t, rs, time.Minute)
		if victim.err == nil || !strings.Contains(victim.stderr.String(), "recording it failed") {
			t.Errorf("the paused runner: %v, want exit 1 and its end refused:\n%s", victim.err, victim.stderr.String())
		}
		// The paused runner's step: the first it ran (a runner starts its
		// walk of the list at a random place).
		var paused string
		for step, who := range runsOf(t, filepath.Join(r.dir, "runs")) {
			if who[0] == "runner-1" {
				paused = step
			}
		}
		for _, st := range r.steps(id) {
			if st.State != "passed" {
				t.Errorf("step %s: %s, want passed (the paused runner's exit 7 must not be recorded)", st.Name, st.State)
			}
			if st.Name == paused && st.Attempts != 2 {
				t.Errorf("step %s: %d attempts, want 2 (a crashed one, then the one that took over)", st.Name, st.Attempts)
			}
		}
		if paused == "" {
			t.Error("runner-1 ran no step first")
		}
		if t.Failed() {
			runs, _ := os.ReadFile(filepath.Join(r.dir, "runs"))
			t.Logf("runs:\n%s\nrunner-1:\n%s\nrunner-2:\n%s", runs, victim.stderr.String(), others[0].stderr.String())
		}
	})
}

// waitFor waits until path exists.
func waitFor(t *testing.T, path string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not appear within %s", path, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
