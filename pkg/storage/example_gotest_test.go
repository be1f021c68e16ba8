package storage_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// A Go test suite made resumable: each test is a step of the session named
// by $CKPT_SESSION, run for the key in $CKPT_KEY (a commit id). A test that
// passed for that key is skipped when the suite runs again — after a
// timeout, a reboot, a killed CI job — and a test that failed, crashed or
// never ran runs again.
//
// The suite's TestMain opens the session once, before any test runs:
//
//	var session *storage.Session // nil: not resumable, every test runs
//
//	func TestMain(m *testing.M) {
//		if dir := os.Getenv("CKPT_SESSION"); dir != "" {
//			s, err := storage.Open(dir)
//			if err != nil {
//				fmt.Fprintln(os.Stderr, "ckpt:", err)
//				os.Exit(1)
//			}
//			session = s
//		}
//		os.Exit(m.Run())
//	}
//
// and every test starts with resumable(t), below. Test names, subtests
// included ("TestFlaky/sub_case"), are step names as they are. Here the
// suite is TestExampleBuild and TestExampleFlaky in this file, run by this
// test binary as "go test" would run them; as they share their package
// with other tests, which a TestMain would govern too, they open the
// session on first use (suiteSession) instead.
func ExampleSession_StartStep_goTest() {
	repo, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	dir := filepath.Join(repo, "gotest-example")
	if err := os.Mkdir(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	d, err := storage.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	s, err := storage.Init(ctx, d, storage.WithTitle("go test"), storage.WithKey("3f2a9c1"))
	if err != nil {
		log.Fatal(err)
	}

	// "go test" twice for the same commit: a flaky test fails the first
	// time.
	for run, flaky := range []string{"fail", "pass"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestExample(Build|Flaky)$", "-test.v")
		cmd.Env = append(os.Environ(), "CKPT_SESSION="+dir, "CKPT_KEY=3f2a9c1", exampleSuiteEnv+"="+flaky)
		out, err := cmd.Output()
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			log.Fatal(err)
		}
		fmt.Printf("run %d: exit status %d\n", run+1, cmd.ProcessState.ExitCode())
		for _, m := range testResult.FindAllStringSubmatch(string(out), -1) {
			fmt.Printf("  %s %s\n", m[1], m[2])
		}
	}

	steps, err := s.Steps(ctx)
	if err != nil {
		log.Fatal(err)
	}
	slices.SortFunc(steps, func(a, b checkpoint.Step) int { return strings.Compare(a.Name, b.Name) })
	for _, st := range steps {
		fmt.Printf("%s: %s for %s, attempts: %d\n", st.Name, st.State, st.Key, st.Attempts)
	}
	// Output:
	// run 1: exit status 1
	//   PASS TestExampleBuild
	//   FAIL TestExampleFlaky
	//   PASS TestExampleFlaky/steady
	//   FAIL TestExampleFlaky/sub_case
	// run 2: exit status 0
	//   SKIP TestExampleBuild
	//   PASS TestExampleFlaky
	//   SKIP TestExampleFlaky/steady
	//   PASS TestExampleFlaky/sub_case
	// TestExampleBuild: passed for 3f2a9c1, attempts: 1
	// TestExampleFlaky: passed for 3f2a9c1, attempts: 2
	// TestExampleFlaky/steady: passed for 3f2a9c1, attempts: 1
	// TestExampleFlaky/sub_case: passed for 3f2a9c1, attempts: 2
}

// testResult matches the result lines of "go test -v".
var testResult = regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): (\S+)`)

// exampleSuiteEnv is set only in the "go test" runs of the example: "fail"
// makes the flaky test fail. Without it, the suite's tests skip.
const exampleSuiteEnv = "CKPT_EXAMPLE_SUITE"

// suiteSession is the session of $CKPT_SESSION, opened on first use; nil
// when it is not set. A suite with a TestMain of its own opens it there.
var suiteSession = sync.OnceValues(func() (*storage.Session, error) {
	dir := os.Getenv("CKPT_SESSION")
	if dir == "" {
		return nil, nil
	}
	return storage.Open(dir)
})

// resumable is what each test of a resumable suite calls first.
func resumable(t *testing.T) {
	t.Helper()
	s, err := suiteSession()
	if err != nil {
		t.Fatalf("ckpt: %v", err)
	}
	if s != nil {
		resumableIn(t, s, os.Getenv("CKPT_KEY"))
	}
}

// resumableIn claims the step named t.Name() in s for key. It skips t if
// the step passed for key; otherwise t runs, and when it ends (its
// subtests too) the attempt is recorded passed or failed. A test that skips
// itself did not pass: it is recorded interrupted, and runs next time.
func resumableIn(t *testing.T, s *storage.Session, key string) {
	t.Helper()
	claim, err := s.StartStep(t.Context(), t.Name(), storage.StepOptions{
		Identity: checkpoint.Identity{Key: key},
		Command:  "go test",
	})
	if err != nil {
		// A *storage.LockedError: another live process runs this test.
		t.Fatalf("ckpt: %v", err)
	}
	switch claim.Action {
	case storage.StepSkip:
		t.Skipf("ckpt: passed for %s in session %s", key, s.ID())
	case storage.StepGiveUp:
		t.Fatalf("ckpt: not run: %s", claim.Attempt.Note)
	}
	t.Cleanup(func() {
		state, exit := checkpoint.StepPassed, 0
		switch {
		case t.Failed():
			state, exit = checkpoint.StepFailed, 1
		case t.Skipped():
			state, exit = checkpoint.StepInterrupted, -1
		}
		// t.Context is done by the time cleanups run.
		if _, err := claim.End(context.Background(), state, exit); err != nil {
			t.Errorf("ckpt: %v", err)
		}
	})
}

// TestExampleBuild and TestExampleFlaky are the suite that
// ExampleSession_StartStep_goTest runs.
func TestExampleBuild(t *testing.T) {
	if os.Getenv(exampleSuiteEnv) == "" {
		t.Skip("run by ExampleSession_StartStep_goTest")
	}
	resumable(t)
}

func TestExampleFlaky(t *testing.T) {
	if os.Getenv(exampleSuiteEnv) == "" {
		t.Skip("run by ExampleSession_StartStep_goTest")
	}
	resumable(t)
	t.Run("steady", func(t *testing.T) {
		resumable(t)
	})
	t.Run("sub_case", func(t *testing.T) {
		resumable(t)
		if os.Getenv(exampleSuiteEnv) == "fail" {
			t.Error("flaky: failed this time")
		}
	})
}

// Parallel tests of one suite, each a step of the same Session, each also
// saving progress: every claim, end and save succeeds, and each step is
// recorded passed once; a second run of the suite skips them all.
func TestResumableParallelSubtests(t *testing.T) {
	s, _ := newSession(t)
	const key, tests = "3f2a9c1", 16
	var names []string
	t.Run("suite", func(t *testing.T) {
		for i := range tests {
			name := fmt.Sprintf("case_%02d", i)
			names = append(names, t.Name()+"/"+name)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				resumableIn(t, s, key)
				if _, err := s.Save(t.Context(), strings.NewReader(t.Name())); err != nil {
					t.Errorf("Save: %v", err)
				}
			})
		}
	})
	if t.Failed() {
		return
	}

	steps, err := s.Steps(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range steps {
		got = append(got, st.Name)
		want := []checkpoint.Identity{{Key: key}}
		if st.State != checkpoint.StepPassed || st.Attempts != 1 || st.Exit != 0 || !slices.EqualFunc(st.Passed, want, identityEqual) {
			t.Errorf("step %s: %s after %d attempts, exit %d, passed for %+v; want passed once, for %q", st.Name, st.State, st.Attempts, st.Exit, st.Passed, key)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, names) {
		t.Errorf("steps %q, want %q", got, names)
	}
	if h := current(t, s); h.Generation != tests {
		t.Errorf("generation %d after %d parallel saves, want %d", h.Generation, tests, tests)
	}

	// The suite again, for the same key: every test is skipped, and its
	// record stays as it was.
	for _, name := range names {
		c, err := s.StartStep(t.Context(), name, storage.StepOptions{Identity: checkpoint.Identity{Key: key}, Command: "go test"})
		if err != nil {
			t.Fatalf("StartStep(%q) again: %v", name, err)
		}
		if c.Action != storage.StepSkip || c.Attempt.N != 1 {
			t.Errorf("StartStep(%q) again: action %d at attempt %d, want a skip of attempt 1", name, c.Action, c.Attempt.N)
		}
	}
}

func identityEqual(a, b checkpoint.Identity) bool { return a.Matches(b) && b.Matches(a) }
