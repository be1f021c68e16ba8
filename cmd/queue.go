package cmd

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// How long a runner waits before it looks again at the steps other live
// runners hold: queuePoll at first, half as long again each time it finds
// nothing to do, up to queuePollMax locally (where looking is cheap and a
// dead runner's claim is free at once) or queuePollMaxS3 (where each look
// costs requests and a dead runner's lease lasts seconds).
const (
	queuePoll      = 200 * time.Millisecond
	queuePollMax   = time.Second
	queuePollMaxS3 = 3 * time.Second
)

type queueOptions struct {
	id          string
	from        string
	names       []string // the steps read from from
	fleet       string
	key         string
	runner      string
	retries     int
	maxAttempts int
	logLimit    int64
	lease       time.Duration
	argv        []string
}

func (a *app) newQueueCommand() *cobra.Command {
	var o queueOptions
	c := &cobra.Command{
		Use:   "queue [ID] --from FILE|- [--key KEY] [--runner NAME] [--retries N] [--max-attempts N] -- CMD [ARGS...]",
		Short: "Run a list of steps, shared with other runners: each step run once",
		Long: `Run the steps listed in FILE (one name a line; '-' reads stdin; blank
lines and lines starting with '#' are left out) as 'ckpt step' runs one,
until none is left: CMD with every "{}" in ARGS replaced by the step's name
and $CKPT_STEP set to it. Without ID, the session is $CKPT_SESSION.

Fleet mode. N runners (CI nodes of a matrix, GitLab parallel: jobs) started
with the same session and list split it between them as they go: each
claims the next step that has not passed for this key and command line and
that no live runner holds, runs it, records it, and moves on. A step is run
by one runner at a time. A step whose runner dies is claimed again once its
claim is gone (at once on a local volume, where the claim is a flock; when
its lease runs out on S3, --lease or $CKPT_S3_LEASE, 30s by default): its
attempt is recorded crashed and another runner runs it. A runner that has
nothing left to claim waits for the steps other runners hold, so that it can
take over the step of one that dies; it ends when every listed step has
passed, or failed since the runner started.

Order: the steps with the longest recorded duration first (from this
session's earlier attempts, else from the youngest other session with the
same prefix), then those with none, in the list's order, so that runners
finish at about the same time.

A step that failed in this fleet (--fleet ID, else $CKPT_FLEET: the same id
for every runner of one CI run, such as its pipeline id) is not run again;
one that failed in an earlier fleet (a retry) is. Without a fleet id, a
step that failed since this runner started counts as this fleet's, by
comparing this runner's clock with the one that recorded the failure. A
step interrupted by a signal is taken up again, as a crashed one is.
--retries works as for 'ckpt step'; --max-attempts (3 by default here)
gives up a step once that many attempts in a row crashed or failed, so that
a step that kills its runner does not take down every runner in turn.

Exit status: 0 if every step this runner ran passed (or it ran none), 1 if
any failed, crashed or was given up, 128+N when a signal N stopped it (it
lets the step it runs end first: the signal is passed on to CMD). 'ckpt
steps', 'ckpt wait' and 'ckpt report' show every step's state.`,
		Example: `  # on each of 4 CI nodes:
  ckpt queue "$S" --from tests.txt --key "$GIT_SHA" --runner "node-$NODE" -- go test -run '^{}$' ./...
  # in the job that gathers the result:
  ckpt wait "$S" --from tests.txt --timeout 30m && ckpt report "$S" --junit junit.xml`,
		Args: usageArgs(queueArgs),
		RunE: func(c *cobra.Command, args []string) error {
			dash := c.ArgsLenAtDash()
			o.argv = args[dash:]
			id, _, err := a.sessionArgs(args[:dash], 0)
			if err != nil {
				return err
			}
			o.id = id
			if !c.Flags().Changed("key") {
				o.key = a.getenv("CKPT_KEY")
			}
			if !c.Flags().Changed("runner") {
				o.runner = a.getenv("CKPT_RUNNER")
			}
			if !c.Flags().Changed("fleet") {
				o.fleet = a.getenv("CKPT_FLEET")
			}
			switch {
			case o.from == "":
				return usageError{errors.New("--from FILE is required: the list of steps, one name a line ('-' for stdin)")}
			case o.retries < 0:
				return usageError{fmt.Errorf("--retries %d: want 0 or more", o.retries)}
			case o.maxAttempts < 0:
				return usageError{fmt.Errorf("--max-attempts %d: want 1 or more (0: no limit)", o.maxAttempts)}
			case o.logLimit < 1:
				return usageError{fmt.Errorf("--log-limit %d: want at least 1 byte", o.logLimit)}
			case c.Flags().Changed("lease") && o.lease < time.Second:
				return usageError{fmt.Errorf("--lease %s: want at least 1s", o.lease)}
			case len(o.runner) > checkpoint.MaxNameLen, len(o.fleet) > checkpoint.MaxNameLen:
				return usageError{fmt.Errorf("--runner and --fleet: at most %d bytes", checkpoint.MaxNameLen)}
			}
			if err := (checkpoint.Identity{Key: o.key, Command: o.argv}).Validate(); err != nil {
				return usageError{err}
			}
			if o.names, err = a.readStepList(o.from); err != nil {
				return err
			}
			return a.runQueue(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.from, "from", "", "read the step names from `FILE`, one a line ('-': stdin)")
	f.StringVar(&o.key, "key", "", "what the steps run for, such as a commit id (default $CKPT_KEY)")
	f.StringVar(&o.runner, "runner", "", "this runner's `NAME` in the records and the report's timeline (default $CKPT_RUNNER, else host and pid)")
	f.IntVar(&o.retries, "retries", 0, "run a failing step up to `N` more times")
	f.IntVar(&o.maxAttempts, "max-attempts", 3, "give a step up once `N` attempts in a row crashed or failed (0: no limit), so that a step that kills its runner does not take down every runner in turn")
	f.StringVar(&o.fleet, "fleet", "", "the fleet run this runner belongs to, such as the CI pipeline's id: a step that failed in the same fleet is not run again (default $CKPT_FLEET; without one, a step that failed since this runner started)")
	f.Int64Var(&o.logLimit, "log-limit", storage.DefaultLogLimit, "keep at most `BYTES` of each attempt's output")
	durationVar(f, &o.lease, "lease", 0, "on S3, how long a claim lasts unless renewed (default $CKPT_S3_LEASE, else 30s)")
	return c
}

// queueArgs checks the shape of 'ckpt queue [ID] -- CMD [ARGS...]'.
func queueArgs(c *cobra.Command, args []string) error {
	dash := c.ArgsLenAtDash()
	switch {
	case dash < 0:
		return errors.New("no command: put it after '--', as in: ckpt queue --from tests.txt -- ./run-test {}")
	case dash == len(args):
		return errors.New("no command after '--'")
	case dash > 1:
		return fmt.Errorf("want at most an ID before '--', got %d arguments", dash)
	}
	return nil
}

// readStepList reads step names, one a line, from path ('-': stdin).
func (a *app) readStepList(path string) ([]string, error) {
	var r io.Reader = a.io.In
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, usageError{fmt.Errorf("--from: %w", err)}
		}
		defer f.Close()
		r = f
	}
	var names []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		name := strings.TrimRight(sc.Text(), " \t\r")
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if !checkpoint.ValidStepName(name) {
			return nil, usageError{fmt.Errorf("--from %s, line %d: invalid step name %q: %s", path, line, name, checkpoint.StepNameRule)}
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--from %s: %w", path, err)
	}
	return names, nil
}

// runQueue runs the steps of o.names that are left, with the other
// runners of the fleet, until none is.
func (a *app) runQueue(ctx context.Context, o queueOptions) error {
	a.lease = o.lease
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	s, err := r.Open(ctx, o.id)
	if err != nil {
		return err
	}
	return a.queueSteps(ctx, r, s, o)
}

// queueSteps is runQueue on the session s of repository r.
func (a *app) queueSteps(ctx context.Context, r *repository.Repository, s *storage.Session, o queueOptions) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)

	start := a.now()
	poll, pollMax := queuePoll, queuePollMax
	if strings.HasPrefix(s.Location(), "s3://") {
		pollMax = queuePollMaxS3
	}
	pending := a.queueOrder(ctx, r, s, o.names)
	opts := storage.StepOptions{
		NoReturn:    false,
		MaxAttempts: o.maxAttempts,
		Command:     "ckpt queue",
		Runner:      o.runner,
		Fleet:       o.fleet,
		FailedSince: start,
	}
	var ran, passed, skipped int
	var bad []string
	for len(pending) > 0 {
		var held []string
		progress := false
		for _, name := range pending {
			if sig := pendingSignal(sigs); sig != nil {
				return a.queueEnd(ran, passed, skipped, bad, exitStatus{code: 128 + int(sig.(syscall.Signal)), err: fmt.Errorf("queue: stopped by %s; %d steps left", sig, len(pending))})
			}
			argv := substitute(o.argv, name)
			opts.Identity = checkpoint.Identity{Key: o.key, Command: argv}
			claim, err := s.StartStep(ctx, name, opts)
			var le *storage.LockedError
			switch {
			case errors.As(err, &le) && !le.Lost:
				held = append(held, name) // another live runner runs it
				continue
			case err != nil:
				return err
			}
			a.endCrashed(claim)
			switch claim.Action {
			case storage.StepSkip, storage.StepEnded:
				skipped++
				continue
			case storage.StepGiveUp:
				bad = append(bad, name)
				a.notice("step %s: gave up after %d attempts that crashed or failed (--max-attempts %d)", name, claim.Attempt.Failures, o.maxAttempts)
				continue
			}
			progress = true
			so := stepOptions{name: name, argv: argv, retries: o.retries, logLimit: o.logLimit, env: []string{"CKPT_STEP=" + name}}
			end, startErr, err := a.runAttempts(ctx, claim, so, sigs)
			ran++
			switch {
			case err != nil:
				a.warn("step %s %s with exit status %d, but recording it failed: %s", name, end.State, end.Exit, message(err))
				bad = append(bad, name)
			case startErr != nil:
				a.warn("step %s: cannot run %s: %s", name, argv[0], message(startErr))
				bad = append(bad, name)
			case end.State == checkpoint.StepPassed:
				passed++
			default:
				a.printStepEnd(end)
				bad = append(bad, name)
			}
			if end.State == checkpoint.StepInterrupted {
				return a.queueEnd(ran, passed, skipped, bad, exitStatus{code: end.Exit, err: fmt.Errorf("queue: step %s was interrupted; stopping", name)})
			}
		}
		pending = held
		if progress {
			poll = queuePoll
		}
		if len(pending) > 0 {
			// Every step left is held by a live runner: look again soon,
			// to take over the step of one that dies.
			d := time.Duration(float64(poll) * (0.5 + rand.Float64()/2))
			select {
			case <-time.After(d):
				poll = min(poll*3/2, pollMax)
			case sig := <-sigs:
				return a.queueEnd(ran, passed, skipped, bad, exitStatus{code: 128 + int(sig.(syscall.Signal)), err: fmt.Errorf("queue: stopped by %s; %d steps left to other runners", sig, len(pending))})
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	var err error
	if len(bad) > 0 {
		err = exitStatus{code: 1}
	}
	return a.queueEnd(ran, passed, skipped, bad, err)
}

// queueEnd prints what a runner did on stderr, and returns err.
func (a *app) queueEnd(ran, passed, skipped int, bad []string, err error) error {
	a.printQueueEnd(ran, passed, skipped, bad)
	return err
}

// pendingSignal returns a signal that has arrived, without waiting.
func pendingSignal(sigs <-chan os.Signal) os.Signal {
	select {
	case sig := <-sigs:
		return sig
	default:
		return nil
	}
}

// substitute returns argv with every "{}" replaced by name.
func substitute(argv []string, name string) []string {
	out := make([]string, len(argv))
	for i, arg := range argv {
		out[i] = strings.ReplaceAll(arg, "{}", name)
	}
	return out
}

// queueOrder orders names longest recorded duration first, from this
// session's attempts, else from the youngest other session with the same
// prefix; then those with no duration, in the list's order from a random
// place (a rotation, so that runners do not all start with the same step). A duration that
// cannot be read leaves the list's order.
func (a *app) queueOrder(ctx context.Context, r *repository.Repository, s *storage.Session, names []string) []string {
	known := map[string]time.Duration{}
	add := func(steps []checkpoint.Step) {
		for _, st := range steps {
			if _, ok := known[st.Name]; !ok && st.Duration > 0 && st.State != checkpoint.StepRunning {
				known[st.Name] = st.Duration
			}
		}
	}
	if steps, err := s.Steps(ctx); err == nil {
		add(steps)
	}
	if prev := a.previousSession(ctx, r, s.ID()); prev != nil {
		if steps, err := prev.Steps(ctx); err == nil {
			add(steps)
		}
	}
	out := slices.Clone(names)
	// Runners that walk the same list in the same order collide on every
	// step: each starts its walk of the steps without a duration at a
	// random place in them, keeping their order from there.
	rot := 0
	if len(out) > 0 {
		rot = rand.IntN(len(out))
	}
	unknownRank := make(map[string]int, len(out))
	for i, n := range out {
		unknownRank[n] = (i - rot + len(out)) % len(out)
	}
	slices.SortStableFunc(out, func(x, y string) int {
		dx, okx := known[x]
		dy, oky := known[y]
		switch {
		case okx && oky:
			return cmp.Compare(dy, dx)
		case okx:
			return -1
		case oky:
			return 1
		}
		return cmp.Compare(unknownRank[x], unknownRank[y])
	})
	return out
}

// previousSession returns the youngest session other than id with id's
// prefix; nil if there is none.
func (a *app) previousSession(ctx context.Context, r *repository.Repository, id string) *storage.Session {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return nil
	}
	entries, err := r.List(ctx, repository.Filter{Prefix: id[:i]})
	if err != nil {
		return nil
	}
	for _, e := range entries {
		if e.Err == nil && e.ID != id {
			if s, err := r.Open(ctx, e.ID); err == nil {
				return s
			}
		}
	}
	return nil
}
