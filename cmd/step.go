package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

type stepOptions struct {
	id          string
	name        string
	argv        []string
	key         string
	retries     int
	maxAttempts int
	noReturn    bool
	logLimit    int64
	lock        lockFlags
	env         []string // added to CMD's environment
}

func (a *app) newStepCommand() *cobra.Command {
	var o stepOptions
	c := &cobra.Command{
		Use:   "step [ID] NAME [--key KEY] [--retries N] [--max-attempts N] [--noreturn] -- CMD [ARGS...]",
		Short: "Run CMD as a resumable step, run once and skipped once it has passed",
		Long: `Run CMD as the step NAME of a session, unless that step already passed in
this session for the same key and command line: then print
"ckpt: skip NAME (passed <when>)" on stderr and exit 0 without running it.
Without ID, the session is $CKPT_SESSION.

A step passes for something: --key KEY (else $CKPT_KEY), such as a commit id
or a hash of the inputs, and the command line CMD ARGS. It is skipped only
for a key and command line it passed for (it remembers the last 16); for
another one it runs, and stderr says why ("ckpt: unit-tests passed for key
1a2b3c…; running it for key 4d5e6f…"), so that a run of another commit never
inherits a green step.

One run at a time. Starting a step claims it for this process: locally a
file whose flock this process holds, on S3 a lease it renews. While another
live process runs the step, 'ckpt step' exits 4 naming it, or with --wait D
waits for it to end, then skips the step if it passed for the same key and
command line and runs it otherwise. Two runs of one step never overlap.

Every run of CMD is an attempt, recorded apart from the checkpoint: when it
starts (running, with who runs it) and when it ends (passed, failed or
interrupted, with its exit status and duration). Recording a step costs
the same whatever the payload and however many steps the session has.
Attempts are numbered across invocations; the last 5 keep their records and
logs ('ckpt logs NAME --attempt N').

A run killed with SIGKILL or a reboot cannot record its end. The next 'ckpt
step' of that step finds its claim dead, records that attempt as crashed
(when it started, who ran it), and then:
  - runs the step again (the default);
  - with --noreturn, records it passed without running CMD: for a step whose
    run ends the machine's run, such as a reboot test;
  - with --max-attempts N, once N attempts in a row have crashed or failed,
    records it failed and exits 1 without running CMD ("gave up after N
    attempts"), so that a crash loop ends.
'ckpt steps' and 'ckpt show' show a step whose runner is gone as crashed.

ckpt exits with CMD's exit status (128+N when a signal N killed it). A CMD
that cannot be started is recorded as failed with exit status 127 (126 when
it is not executable). --retries N runs a failing CMD up to N more times,
each run an attempt of its own.

Signals. Run from a script or a CI runner, CMD runs in a process group of
its own, and ckpt passes each SIGINT, SIGTERM and SIGHUP it gets on to that
group once: a signal sent to ckpt's whole process group (by timeout(1), a
CI runner) reaches CMD once, not twice. Run in the foreground of a
terminal, CMD stays in ckpt's group, so that a Ctrl-C reaches it directly,
and ckpt does not send it again. If ckpt is killed, CMD is killed too
(Linux). No retry follows a signal, and a CMD that then fails is recorded
as interrupted. The end is recorded before ckpt
exits; a shell script run under timeout(1) should wait for it ('trap'
line in the README).

CMD's stdin, stdout and stderr are ckpt's own; a copy of its stdout and
stderr is kept as the attempt's log, at most --log-limit bytes: past that,
the log keeps the first three quarters and the last quarter, with a line
saying how much was left out. CMD's output goes through a pipe, so CMD does
not see a terminal. Processes CMD leaves running may keep writing to its
output for 5 seconds after CMD exits; start daemons with their output
redirected.

Step names are 1 to 150 bytes of UTF-8 without control characters, not
starting with '-': Go test names such as TestFoo/sub_case are step names.`,
		Example: `  export CKPT_SESSION=$(ckpt last --key "$GIT_SHA" --or-create)
  export CKPT_KEY=$GIT_SHA
  ckpt step build -- make build
  ckpt step unit-tests --retries 2 -- make test
  ckpt step reboot-test --noreturn -- sudo systemctl reboot
  ckpt step flaky-hw --max-attempts 3 -- ./power-cycle.sh
  ckpt step deploy --wait 10m -- ./deploy.sh        # several jobs, one deploy`,
		Args: usageArgs(stepArgs),
		RunE: func(c *cobra.Command, args []string) error {
			dash := c.ArgsLenAtDash()
			o.argv = args[dash:]
			id, rest, err := a.sessionArgs(args[:dash], 1)
			if err != nil {
				return err
			}
			o.id, o.name = id, rest[0]
			if err := validStepName(o.name); err != nil {
				return err
			}
			if !c.Flags().Changed("key") {
				o.key = a.getenv("CKPT_KEY")
			}
			if err := (checkpoint.Identity{Key: o.key, Command: o.argv}).Validate(); err != nil {
				return usageError{fmt.Errorf("step %s: %w", o.name, err)}
			}
			if o.retries < 0 {
				return usageError{fmt.Errorf("--retries %d: want 0 or more", o.retries)}
			}
			if o.maxAttempts < 0 {
				return usageError{fmt.Errorf("--max-attempts %d: want 1 or more (0: no limit)", o.maxAttempts)}
			}
			if o.logLimit < 1 {
				return usageError{fmt.Errorf("--log-limit %d: want at least 1 byte", o.logLimit)}
			}
			if err := o.lock.resolve(a); err != nil {
				return err
			}
			return a.runStep(c.Context(), o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.retries, "retries", 0, "run a failing CMD up to `N` more times")
	f.IntVar(&o.maxAttempts, "max-attempts", 0, "give up, without running CMD, once `N` attempts in a row have crashed or failed (0: no limit)")
	f.BoolVar(&o.noReturn, "noreturn", false, "record an attempt found crashed as passed: CMD ends the run, as a reboot does")
	f.StringVar(&o.key, "key", "", "what the step runs for, such as a commit id: it is skipped only for a `KEY` (and command line) it passed for (default $CKPT_KEY)")
	f.Int64Var(&o.logLimit, "log-limit", storage.DefaultLogLimit, "keep at most `BYTES` of CMD's output in each attempt's log")
	o.lock.register(c)
	return c
}

// stepArgs checks the shape of 'ckpt step [ID] NAME -- CMD [ARGS...]'.
func stepArgs(c *cobra.Command, args []string) error {
	dash := c.ArgsLenAtDash()
	switch {
	case dash < 0:
		return errors.New("no command: put it after '--', as in: ckpt step NAME -- make test")
	case dash == len(args):
		return errors.New("no command after '--'")
	case dash > 2:
		return fmt.Errorf("want [ID] NAME before '--', got %d arguments", dash)
	case dash == 0:
		return errors.New("no step name given before '--'")
	}
	return nil
}

// validStepName returns a usage error unless name can name a step.
func validStepName(name string) error {
	if checkpoint.ValidStepName(name) {
		return nil
	}
	return usageError{fmt.Errorf("invalid step name %q: %s", name, checkpoint.StepNameRule)}
}

// runStep runs one 'ckpt step'.
func (a *app) runStep(ctx context.Context, o stepOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	// Registered before the step is claimed, so that a signal that comes
	// at any later moment is seen here and passed on. Main's context is
	// cancelled by the first one; the records that follow are written
	// without it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	opts := storage.StepOptions{
		Identity:    checkpoint.Identity{Key: o.key, Command: o.argv},
		NoReturn:    o.noReturn,
		MaxAttempts: o.maxAttempts,
		Command:     "ckpt step",
	}
	var claim *storage.StepClaim
	err = a.waiter(s, &o.lock).Do(ctx, func() (err error) {
		claim, err = s.StartStep(ctx, o.name, opts)
		return err
	})
	if err != nil {
		return err
	}
	a.endCrashed(claim)
	switch claim.Action {
	case storage.StepSkip:
		a.printSkip(claim.Attempt)
		return nil
	case storage.StepGiveUp:
		return exitStatus{code: 1, err: fmt.Errorf("step %s: gave up after %d attempts that crashed or failed (--max-attempts %d); CMD was not run",
			o.name, claim.Attempt.Failures, o.maxAttempts)}
	}
	if claim.Prev != nil {
		a.printRunAgain(claim.Prev, opts.Identity)
	}
	end, startErr, err := a.runAttempts(ctx, claim, o, sigs)
	if err != nil {
		return fmt.Errorf("step %s %s with exit status %d, but recording it failed: %w", o.name, end.State, end.Exit, err)
	}
	switch {
	case startErr != nil:
		var ee *exec.Error
		if errors.As(startErr, &ee) {
			startErr = ee.Err
		}
		return exitStatus{code: end.Exit, err: fmt.Errorf("step %s: cannot run %s: %w", o.name, o.argv[0], startErr)}
	case end.Exit != 0:
		a.printStepEnd(end)
		return exitStatus{code: end.Exit}
	}
	return nil
}

// runAttempts runs CMD under the claim until it passes, is interrupted,
// cannot be started, or has failed 1+o.retries times, each run an attempt
// with a log of its own, and records how the last one ended. It returns
// that record, the error that kept CMD from starting, and the error that
// kept the end from being recorded.
func (a *app) runAttempts(ctx context.Context, claim *storage.StepClaim, o stepOptions, sigs <-chan os.Signal) (checkpoint.Attempt, error, error) {
	bg := context.WithoutCancel(ctx)
	for run := 1; ; run++ {
		log := &stepLog{w: nopWriteCloser{}}
		if w, err := claim.OpenLog(bg, o.logLimit); err != nil {
			a.warn("step %s runs without a log: %s", o.name, message(err))
		} else {
			log.w = w
		}
		var (
			exit     int
			sig      os.Signal
			startErr error
		)
		select {
		case sig = <-sigs: // between attempts: do not start another
			exit = 128 + int(sig.(syscall.Signal))
		default:
			env := append(slices.Clone(o.env), "CKPT_STEP="+o.name, "CKPT_ATTEMPT="+claim.Attempt.Token)
			exit, sig, startErr = a.runCommand(o.argv, env, log, sigs)
		}
		if err := log.Close(); err != nil {
			a.warn("step %s: the log is incomplete: %s", o.name, message(err))
		}
		state := checkpoint.StepPassed
		switch {
		case startErr != nil:
			// The shell's statuses: 127 not found, 126 found but
			// not executable.
			state, exit = checkpoint.StepFailed, 126
			if errors.Is(startErr, exec.ErrNotFound) || errors.Is(startErr, fs.ErrNotExist) {
				exit = 127
			}
		case exit == 0:
		case sig != nil:
			state = checkpoint.StepInterrupted
		case run > o.retries:
			state = checkpoint.StepFailed
		default:
			a.printRetry(claim.Attempt, exit, run, o.retries+1)
			if err := claim.Retry(bg, exit); err != nil {
				_ = claim.Release(bg)
				return claim.Attempt, nil, err
			}
			continue
		}
		end, err := claim.End(bg, state, exit)
		if err != nil {
			end = claim.Attempt.Ended(state, exit, 0, "")
		}
		return end, startErr, err
	}
}

// endCrashed reports the attempt StartStep found dead, and kills what its
// command left running on this host, so that two runs of the step never
// overlap.
func (a *app) endCrashed(claim *storage.StepClaim) {
	cr := claim.Crashed
	if cr == nil {
		return
	}
	a.printCrashed(cr)
	if host, err := os.Hostname(); err == nil && cr.Owner != nil && cr.Owner.Host == host {
		if n := killLeftovers(cr.Token); n > 0 {
			a.notice("step %s: killed %d processes attempt %d left running", cr.Step, n, cr.N)
		}
	}
}

// runCommand runs argv once, with its output copied to log; see runChild.
func (a *app) runCommand(argv, env []string, log io.Writer, sigs <-chan os.Signal) (int, os.Signal, error) {
	c := exec.Command(argv[0], argv[1:]...)
	if env != nil {
		c.Env = append(os.Environ(), env...)
	}
	c.Stdin = a.io.In
	c.Stdout = io.MultiWriter(a.io.Out, log)
	c.Stderr = io.MultiWriter(a.io.Err, log)
	return a.runChildGroup(c, sigs)
}

// stepLog is a step's log as CMD's stdout and stderr share it. A failure to
// write it must not stop CMD's output to the terminal, so Write never fails;
// Close reports the first error.
type stepLog struct {
	mu  sync.Mutex
	w   io.WriteCloser
	err error
}

func (l *stepLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && len(p) > 0 {
		_, l.err = l.w.Write(p)
	}
	return len(p), nil
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

func (l *stepLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.err, l.w.Close())
}
