package storage_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// The step protocol's behaviours, run by runConformance on every backend.

func startStep(t *testing.T, s *storage.Session, name string, o storage.StepOptions) *storage.StepClaim {
	t.Helper()
	c, err := s.StartStep(t.Context(), name, o)
	if err != nil {
		t.Fatalf("StartStep(%q): %v", name, err)
	}
	return c
}

func wantAction(t *testing.T, c *storage.StepClaim, want storage.StepAction) {
	t.Helper()
	if c.Action != want {
		t.Fatalf("step %s: action %d, want %d (attempt %+v)", c.Attempt.Step, c.Action, want, c.Attempt)
	}
}

func stepByName(t *testing.T, s *storage.Session, name string) checkpoint.Step {
	t.Helper()
	steps, err := s.Steps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("step %s not in %+v", name, steps)
	return checkpoint.Step{}
}

func id(key string, argv ...string) storage.StepOptions {
	return storage.StepOptions{Identity: checkpoint.Identity{Key: key, Command: argv}}
}

// A step passes for a key and a command line: skipped for one it passed
// for, run for any other, and it remembers the earlier ones.
func testStepIdentity(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	runStep(t, s, "unit", id("A", "make", "test"), "a\n")
	wantAction(t, startStep(t, s, "unit", id("A", "make", "test")), storage.StepSkip)
	c := startStep(t, s, "unit", id("B", "make", "test"))
	wantAction(t, c, storage.StepRun)
	if c.Prev == nil || c.Prev.State != checkpoint.StepPassed || c.Attempt.N != 2 {
		t.Errorf("run for key B: prev %+v, attempt %d; want passed before, attempt 2", c.Prev, c.Attempt.N)
	}
	if _, err := c.End(t.Context(), checkpoint.StepPassed, 0); err != nil {
		t.Fatal(err)
	}
	wantAction(t, startStep(t, s, "unit", id("A", "make", "test")), storage.StepSkip)
	wantAction(t, startStep(t, s, "unit", id("B", "make", "test")), storage.StepSkip)
	c = startStep(t, s, "unit", id("A", "make", "test", "-v"))
	wantAction(t, c, storage.StepRun)
	if err := c.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Steps are no generations: the checkpoint did not change.
	if st, err := s.Stat(t.Context()); err != nil || st.Header.Generation != 0 {
		t.Errorf("Stat after steps: %+v, %v; want generation 0", st, err)
	}
}

// While one claim is held, another StartStep of the step fails with a live
// *LockedError naming the step and the holder; once it ends, the step is
// skipped (it passed) or run.
func testStepClaim(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	c1 := startStep(t, s, "deploy", id("k"))
	wantAction(t, c1, storage.StepRun)
	_, err := s.StartStep(t.Context(), "deploy", id("k"))
	var le *storage.LockedError
	if !errors.As(err, &le) || le.Stale || le.Lost || le.Step != "deploy" || le.Owner == nil || le.Owner.PID != os.Getpid() {
		t.Fatalf("second StartStep while claimed: %v (%+v), want a live claim of this process", err, le)
	}
	if !strings.Contains(err.Error(), "step deploy is being run by pid") {
		t.Errorf("message %q does not name the step and its runner", err)
	}
	if st := stepByName(t, s, "deploy"); st.State != checkpoint.StepRunning || st.Owner == nil {
		t.Errorf("Steps while it runs: %+v", st)
	}
	// Another step is not held up.
	runStep(t, s, "other", id("k"), "")
	if _, err := c1.End(t.Context(), checkpoint.StepPassed, 0); err != nil {
		t.Fatal(err)
	}
	wantAction(t, startStep(t, s, "deploy", id("k")), storage.StepSkip)
	if _, err := c1.End(t.Context(), checkpoint.StepPassed, 0); err == nil {
		t.Error("a second End of one attempt succeeded")
	}
}

// Sixteen goroutines start one step at once: one runs it, the others are
// refused while it runs and skip it once it passed.
func testStepConcurrentClaims(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	var (
		mu   sync.Mutex
		runs int
		wg   sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for {
				c, err := s.StartStep(t.Context(), "once", id("k"))
				var le *storage.LockedError
				if errors.As(err, &le) && !le.Stale {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if c.Action == storage.StepRun {
					mu.Lock()
					runs++
					mu.Unlock()
					time.Sleep(50 * time.Millisecond)
					if _, err := c.End(t.Context(), checkpoint.StepPassed, 0); err != nil {
						t.Error(err)
					}
				}
				return
			}
		})
	}
	wg.Wait()
	if runs != 1 {
		t.Errorf("the step ran %d times, want once", runs)
	}
}

// A runner that dies (its claim gone, no end recorded) shows as crashed;
// the next StartStep records the crash and runs attempt 2, counting it.
func testStepCrash(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	c := startStep(t, s, "power", id("k"))
	wantAction(t, c, storage.StepRun)
	if err := c.Release(t.Context()); err != nil { // dies: no end
		t.Fatal(err)
	}
	if st := stepByName(t, s, "power"); st.State != checkpoint.StepCrashed || st.Attempts != 1 || st.Exit != -1 {
		t.Errorf("Steps after the runner died: %+v, want crashed after 1 attempt", st)
	}
	c = startStep(t, s, "power", id("k"))
	wantAction(t, c, storage.StepRun)
	if c.Crashed == nil || c.Crashed.State != checkpoint.StepCrashed || c.Crashed.N != 1 || c.Crashed.Owner == nil {
		t.Fatalf("Crashed = %+v, want attempt 1 crashed with its owner", c.Crashed)
	}
	if c.Attempt.N != 2 || c.Attempt.Failures != 1 {
		t.Errorf("attempt %d with %d failures before, want 2 and 1", c.Attempt.N, c.Attempt.Failures)
	}
	if _, err := c.End(t.Context(), checkpoint.StepPassed, 0); err != nil {
		t.Fatal(err)
	}
	attempts, err := s.Attempts(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, a := range attempts {
		states = append(states, fmt.Sprintf("%s#%d:%s", a.Step, a.N, a.State))
	}
	if !slices.Equal(states, []string{"power#1:crashed", "power#2:passed"}) {
		t.Errorf("Attempts = %v", states)
	}
}

// --max-attempts gives up once that many attempts in a row crashed or
// failed, recording the step failed without running it; --noreturn records
// an attempt found dead as passed.
func testStepMaxAttemptsNoReturn(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	o := id("k")
	o.MaxAttempts = 3
	for range 3 {
		c := startStep(t, s, "loop", o)
		wantAction(t, c, storage.StepRun)
		if err := c.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	c := startStep(t, s, "loop", o)
	wantAction(t, c, storage.StepGiveUp)
	if c.Attempt.State != checkpoint.StepFailed || c.Attempt.Failures != 3 || !strings.Contains(c.Attempt.Note, "gave up after 3 attempts") {
		t.Errorf("give-up record %+v", c.Attempt)
	}
	wantAction(t, startStep(t, s, "loop", o), storage.StepGiveUp)
	o.MaxAttempts = 10
	wantAction(t, startStep(t, s, "loop", o), storage.StepRun)

	n := id("k")
	n.NoReturn = true
	c = startStep(t, s, "reboot", n)
	wantAction(t, c, storage.StepRun)
	if err := c.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	c = startStep(t, s, "reboot", n)
	wantAction(t, c, storage.StepSkip)
	if c.Crashed == nil || c.Crashed.State != checkpoint.StepPassed {
		t.Errorf("noreturn: Crashed = %+v, want attempt 1 recorded passed", c.Crashed)
	}
	if st := stepByName(t, s, "reboot"); st.State != checkpoint.StepPassed || st.Attempts != 1 {
		t.Errorf("noreturn step: %+v", st)
	}
}

// A step that failed since FailedSince is left alone (StepEnded); one
// that failed before runs again.
func testStepFailedSince(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	before := time.Now().Add(-time.Minute)
	c := startStep(t, s, "t", id("k"))
	if _, err := c.End(t.Context(), checkpoint.StepFailed, 1); err != nil {
		t.Fatal(err)
	}
	o := id("k")
	o.FailedSince = before
	wantAction(t, startStep(t, s, "t", o), storage.StepEnded)
	o.FailedSince = time.Now().Add(time.Minute)
	c = startStep(t, s, "t", o)
	wantAction(t, c, storage.StepRun)
	if err := c.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A runner whose claim was broken and whose attempt another runner ended
// as crashed cannot record an end over it; Retry starts a new attempt
// under the same claim.
func testStepLostClaim(t *testing.T, h harness) {
	s, b := initSession(t, h)
	c1 := startStep(t, s, "x", id("k"))
	if _, err := b.BreakLock(t.Context(), storage.StepDir+"/x/claim", true); err != nil {
		t.Fatal(err)
	}
	c2 := startStep(t, s, "x", id("k"))
	wantAction(t, c2, storage.StepRun)
	if c2.Crashed == nil || c2.Attempt.N != 2 {
		t.Fatalf("takeover: crashed %+v, attempt %d", c2.Crashed, c2.Attempt.N)
	}
	_, err := c1.End(t.Context(), checkpoint.StepFailed, 7)
	var le *storage.LockedError
	if !errors.As(err, &le) || !le.Lost {
		t.Errorf("End of the broken claim = %v, want a Lost *LockedError", err)
	}
	if err := c2.Retry(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	if c2.Attempt.N != 3 || c2.Attempt.State != checkpoint.StepRunning {
		t.Errorf("after Retry: attempt %+v", c2.Attempt)
	}
	if _, err := c2.End(t.Context(), checkpoint.StepPassed, 0); err != nil {
		t.Fatal(err)
	}
	if st := stepByName(t, s, "x"); st.State != checkpoint.StepPassed || st.Attempts != 3 {
		t.Errorf("step x: %+v", st)
	}
}

// Only the last KeepAttempts attempts keep their records and logs.
func testStepPrune(t *testing.T, h harness) {
	s, b := initSession(t, h)
	for i := range storage.KeepAttempts + 3 {
		runStep(t, s, "p", id(fmt.Sprint(i)), fmt.Sprintf("run %d\n", i))
	}
	objs, err := b.ListUnder(t.Context(), storage.StepDir)
	if err != nil {
		t.Fatal(err)
	}
	last := storage.KeepAttempts + 3
	for _, o := range objs {
		var n int
		var kind string
		if _, err := fmt.Sscanf(o.Name[strings.LastIndexByte(o.Name, '/')+1:], "%d.%s", &n, &kind); err == nil && n <= last-storage.KeepAttempts {
			t.Errorf("%s kept, want only attempts after %d", o.Name, last-storage.KeepAttempts)
		}
	}
	if _, _, err := s.StepLog(t.Context(), "p", 1); !errors.Is(err, storage.ErrNoLog) {
		t.Errorf("log of a pruned attempt: %v, want ErrNoLog", err)
	}
	if got := readLog(t, s, "p"); got != fmt.Sprintf("run %d\n", last-1) {
		t.Errorf("latest log = %q", got)
	}
	if st := stepByName(t, s, "p"); st.Attempts != last || len(st.Passed) != last {
		t.Errorf("step p: %d attempts, %d identities passed; want %d and %d", st.Attempts, len(st.Passed), last, last)
	}
}

// Any printable name is a step name: Go test names, names with '/' and
// '..', unicode, the longest allowed; each is a step of its own.
func testStepNames(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	names := []string{"TestFoo/sub_case#01", "../escape", "a/../b", "ünïcode ✓", strings.Repeat("é", checkpoint.MaxStepNameLen/2), "build", "Build"}
	for _, n := range names {
		runStep(t, s, n, id("k"), n)
	}
	steps, err := s.Steps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range steps {
		got = append(got, st.Name)
	}
	if !slices.Equal(got, names) {
		t.Errorf("Steps = %q, want %q in the order they ran", got, names)
	}
	for _, n := range names {
		if l := readLog(t, s, n); l != n {
			t.Errorf("log of %q = %q", n, l)
		}
	}
}

// Twenty thousand steps: no limit, and a step costs the same in a session
// that has them (make bench measures it).
func TestManySteps(t *testing.T) {
	n := 20000
	if testing.Short() {
		n = 2000
	}
	if raceEnabled {
		t.Skip("CPU-bound: make test runs it without the race detector")
	}
	dir := t.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		// On tmpfs: the records are fsynced, which costs nothing there.
		shm, err := os.MkdirTemp("/dev/shm", "ckpt-many-steps-")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(shm) })
			dir = shm
		}
	}
	if err := os.Mkdir(dir+"/s", 0o700); err != nil {
		t.Fatal(err)
	}
	s, err := storage.Open(dir + "/s")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	work := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range work {
				c, err := s.StartStep(t.Context(), fmt.Sprintf("TestCase/%05d", i), id("k"))
				if err == nil {
					_, err = c.End(t.Context(), checkpoint.StepPassed, 0)
				}
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	steps, err := s.Steps(t.Context())
	if err != nil || len(steps) != n {
		t.Fatalf("Steps: %d steps, %v; want %d", len(steps), err, n)
	}
	wantAction(t, startStep(t, s, "TestCase/00042", id("k")), storage.StepSkip)
}
