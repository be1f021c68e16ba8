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
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// stepRecordWait is how long the record of a step that ended waits at least
// for another writer to finish: CMD has run, and its end should not be
// lost to a save that happened to come at the same moment.
const stepRecordWait = 10 * time.Second

type stepOptions struct {
	name     string
	argv     []string
	key      string
	retries  int
	logLimit int64
	keep     int
	lock     lockFlags
}

func (a *app) newStepCommand() *cobra.Command {
	var o stepOptions
	c := &cobra.Command{
		Use:   "step [ID] NAME [--retries N] [--log-limit BYTES] -- CMD [ARGS...]",
		Short: "Run CMD as a resumable step, skipped once it has passed",
		Long: `Run CMD as the step NAME of a session, unless that step already passed in
this session for the same key and command line: then print
"ckpt: skip NAME (passed <when>)" on stderr and exit 0 without running it.
Without ID, the session is $CKPT_SESSION.

A step passes for something: --key KEY (else $CKPT_KEY), such as a commit id
or a hash of the inputs, and the command line CMD ARGS. It is skipped only
for a key and command line it passed for (it remembers the last 16); for
another one it runs, and stderr says why ("ckpt: unit-tests passed for key
1a2b3c…; running it for key 4d5e6f…"), so that a run of another commit never
inherits a green step. A step recorded before keys existed counts as passed
for no key and any command line.

Before CMD starts, the step is recorded as running (a new generation), so a
run killed with SIGKILL or a reboot leaves it visible as running in
'ckpt steps' and 'ckpt show', and the next 'ckpt step' runs it again. When CMD
ends, the step is recorded as passed, failed or interrupted, with its exit
status, the number of attempts, its start time and duration, and ckpt exits
with CMD's exit status (128+N when a signal N killed it). Step records live in
the checkpoint's metadata: each is a new generation with the same payload.

CMD's stdin, stdout and stderr are ckpt's own; a copy of its stdout and stderr
is kept in the session as the step's log (see 'ckpt logs'), at most
--log-limit bytes: past that, the log keeps the first three quarters and the
last quarter, with a line saying how much was left out. CMD's output goes
through a pipe, so CMD does not see a terminal. Processes CMD leaves running
may keep writing to its output for 5 seconds after CMD exits; start daemons
with their output redirected.

--retries N runs a failing CMD up to N more times; each attempt starts with a
"[ckpt: attempt I of N]" line in the log. SIGINT and SIGTERM are passed on to
CMD (except a Ctrl-C from the terminal, which reaches CMD by itself), no retry
follows, and a CMD that then fails is recorded as interrupted. A CMD that
cannot be started is recorded as failed with exit status 127 (126 when it is
not executable), and ckpt exits with that status.

Each record is saved like 'ckpt save' saves: --wait and --break-stale apply
to it, and the record of a step that ended waits at least 10 seconds for
another writer. Step names follow the id rules: lowercase letters, digits,
'-', '_' and '.', not starting with '.', at most 128 characters.`,
		Example: `  export CKPT_SESSION=$(ckpt last --flag incomplete || ckpt create --flag incomplete)
  ckpt step build -- make build
  ckpt step unit-tests --retries 2 -- make test
  ckpt step "$S" integration --log-limit 10000000 -- ./integration.sh --fast`,
		Args: usageArgs(stepArgs),
		RunE: func(c *cobra.Command, args []string) error {
			dash := c.ArgsLenAtDash()
			o.argv = args[dash:]
			id, rest, err := a.sessionArgs(args[:dash], 1)
			if err != nil {
				return err
			}
			o.name = rest[0]
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
			if o.logLimit < 1 {
				return usageError{fmt.Errorf("--log-limit %d: want at least 1 byte", o.logLimit)}
			}
			if o.keep, err = a.keep(c, 0); err != nil {
				return err
			}
			s, err := a.session(c.Context(), id)
			if err != nil {
				return err
			}
			return a.runStep(c.Context(), s, o)
		},
	}
	f := c.Flags()
	f.IntVar(&o.retries, "retries", 0, "run a failing CMD up to `N` more times")
	f.StringVar(&o.key, "key", "", "what the step runs for, such as a commit id: it is skipped only for a `KEY` (and command line) it passed for (default $CKPT_KEY)")
	f.Int64Var(&o.logLimit, "log-limit", storage.DefaultLogLimit, "keep at most `BYTES` of CMD's output in the step's log")
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
	if checkpoint.ValidName(name) {
		return nil
	}
	return usageError{fmt.Errorf("invalid step name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", name, checkpoint.MaxNameLen)}
}

// runStep runs one 'ckpt step'.
func (a *app) runStep(ctx context.Context, s *storage.Session, o stepOptions) error {
	// Registered before the running record is saved, so that a signal
	// that comes at any later moment is seen here and passed on. Main's
	// context is cancelled by the first one; the records that follow are
	// saved without it.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)

	head, err := s.Head(ctx)
	if err != nil {
		return err
	}
	id := checkpoint.Identity{Key: o.key, Command: o.argv}
	var passed []checkpoint.Identity
	if head != nil {
		if prev := head.Step(o.name); prev != nil {
			if _, ok := prev.PassedFor(id); ok {
				a.printSkip(prev)
				return nil
			}
			a.printRunAgain(prev, id)
			passed = prev.Passed
			if len(passed) == 0 && prev.State == checkpoint.StepPassed {
				passed = []checkpoint.Identity{prev.Identity}
			}
		}
	}
	start := time.Now()
	rec := checkpoint.Step{Name: o.name, State: checkpoint.StepRunning, Exit: -1, Attempts: 1, Started: a.now().UTC(),
		Identity: id, Passed: passed}
	if err := a.saveStep(ctx, s, rec, o, o.lock.wait); err != nil {
		return err
	}
	// Opened only now: a step refused above keeps the log of its last run.
	log := &stepLog{w: nopWriteCloser{}}
	if w, err := s.OpenLog(ctx, o.name, o.logLimit); err != nil {
		a.warn("step %s runs without a log: %s", o.name, message(err))
	} else {
		log.w = w
	}

	rec, startErr := a.runAttempts(ctx, s, o, rec, log, sigs)
	rec.Duration = time.Since(start)

	if err := log.Close(); err != nil {
		a.warn("step %s: the log is incomplete: %s", o.name, message(err))
	}
	if err := a.saveStep(context.WithoutCancel(ctx), s, rec, o, max(o.lock.wait, stepRecordWait)); err != nil {
		return fmt.Errorf("step %s %s with exit status %d, but recording it failed: %w", o.name, rec.State, rec.Exit, err)
	}
	switch {
	case startErr != nil:
		var ee *exec.Error
		if errors.As(startErr, &ee) {
			startErr = ee.Err
		}
		return exitStatus{code: rec.Exit, err: fmt.Errorf("step %s: cannot run %s: %w", o.name, o.argv[0], startErr)}
	case rec.Exit != 0:
		a.printStepEnd(rec)
		return exitStatus{code: rec.Exit}
	}
	return nil
}

// runAttempts runs CMD until it passes, is interrupted, cannot be started,
// or has failed 1+o.retries times, and returns rec updated with how it
// ended (all but the duration), and the error that kept CMD from starting.
func (a *app) runAttempts(ctx context.Context, s *storage.Session, o stepOptions, rec checkpoint.Step, log *stepLog, sigs <-chan os.Signal) (checkpoint.Step, error) {
	for attempt := 1; ; attempt++ {
		rec.Attempts = attempt
		if attempt > 1 {
			// A crash during a retry shows how far it got.
			if err := a.saveStep(context.WithoutCancel(ctx), s, rec, o, o.lock.wait); err != nil {
				a.warn("step %s: recording attempt %d: %s", o.name, attempt, message(err))
			}
		}
		if o.retries > 0 {
			log.separator(fmt.Sprintf("[ckpt: attempt %d of %d]", attempt, o.retries+1))
		}
		var (
			sig      os.Signal
			startErr error
		)
		select {
		case sig = <-sigs: // between attempts: do not start another
			rec.Exit = 128 + int(sig.(syscall.Signal))
		default:
			rec.Exit, sig, startErr = a.runCommand(o.argv, log, sigs)
		}
		switch {
		case startErr != nil:
			// The shell's statuses: 127 not found, 126 found but
			// not executable.
			rec.State, rec.Exit = checkpoint.StepFailed, 126
			if errors.Is(startErr, exec.ErrNotFound) || errors.Is(startErr, fs.ErrNotExist) {
				rec.Exit = 127
			}
			return rec, startErr
		case rec.Exit == 0:
			rec.State = checkpoint.StepPassed
			rec = rec.WithPass()
		case sig != nil:
			rec.State = checkpoint.StepInterrupted
		case attempt > o.retries:
			rec.State = checkpoint.StepFailed
		default:
			a.printRetry(rec, o.retries+1)
			continue
		}
		return rec, nil
	}
}

// saveStep commits rec as a new generation with the same payload, waiting up
// to wait for another writer to finish.
func (a *app) saveStep(ctx context.Context, s *storage.Session, rec checkpoint.Step, o stepOptions, wait time.Duration) error {
	w := a.waiter(s, &o.lock)
	w.Max = wait
	return w.Do(ctx, func() error {
		_, err := s.Save(ctx, nil, storage.KeepPayload(), storage.WithStep(rec),
			storage.WithCommand("ckpt step"), storage.Keep(o.keep))
		return err
	})
}

// runCommand runs argv once, with its output copied to log; see runChild.
func (a *app) runCommand(argv []string, log io.Writer, sigs <-chan os.Signal) (int, os.Signal, error) {
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdin = a.io.In
	c.Stdout = io.MultiWriter(a.io.Out, log)
	c.Stderr = io.MultiWriter(a.io.Err, log)
	return a.runChild(c, sigs)
}

// stepLog is a step's log as CMD's stdout and stderr share it. A failure to
// write it must not stop CMD's output to the terminal, so Write never fails;
// Close reports the first error.
type stepLog struct {
	mu   sync.Mutex
	w    io.WriteCloser
	err  error
	last byte
}

func (l *stepLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && len(p) > 0 {
		_, l.err = l.w.Write(p)
		l.last = p[len(p)-1]
	}
	return len(p), nil
}

// separator writes line into the log on a line of its own.
func (l *stepLog) separator(line string) {
	if l.last != 0 && l.last != '\n' {
		line = "\n" + line
	}
	fmt.Fprintln(l, line)
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

func (l *stepLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return errors.Join(l.err, l.w.Close())
}
