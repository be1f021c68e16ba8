package storage

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// KeepAttempts is how many of a step's latest attempts keep their records
// and logs; older ones are removed as new ones start.
const KeepAttempts = 5

// The step protocol. A step's objects live in StepDir/<key>/, where key is
// the step's name when it is a plain name (lowercase letters, digits, '-',
// '_', '.') and otherwise "~" and the name in base32:
//
//	claim      the claim: a lock like session.next, held while the step runs
//	N.start    attempt N's start record, written once the claim is held
//	N.end      attempt N's end record: passed, failed, interrupted, crashed
//	N.log      attempt N's log
//
// Records are created, never replaced: Create fails if the name exists, so
// an attempt has one end. A runner whose claim was broken (its lease ran
// out while it was paused) and taken over finds its attempt already ended
// as crashed, and records nothing over it. Recording a step reads and
// writes only that step's objects: its cost does not depend on the payload
// or on the other steps.

// stepKey returns the directory name of step name.
func stepKey(name string) string {
	if checkpoint.ValidName(name) {
		return name
	}
	return "~" + strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(name)))
}

func stepObject(key, suffix string) string { return StepDir + "/" + key + "/" + suffix }

func claimName(key string) string { return stepObject(key, "claim") }

func attemptObject(key string, n int, kind string) string {
	return stepObject(key, strconv.Itoa(n)+"."+kind)
}

// StepDamaged is the state Steps shows for a step whose latest record
// cannot be read; its Note says why.
const StepDamaged = "damaged"

// stepName returns the step name a directory name stands for.
func stepName(key string) string {
	if enc, ok := strings.CutPrefix(key, "~"); ok {
		if b, err := base32.HexEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(enc)); err == nil {
			return string(b)
		}
	}
	return key
}

// stepObjects is what a listing shows of one step.
type stepObjects struct {
	key    string
	latest int  // the highest attempt with a record; 0 if none
	ended  bool // latest has an end record
	logs   []int
	all    []string
}

// parseStepObjects groups a listing of StepDir by step.
func parseStepObjects(objs []ObjectInfo) map[string]*stepObjects {
	out := map[string]*stepObjects{}
	for _, o := range objs {
		rest, ok := strings.CutPrefix(o.Name, StepDir+"/")
		if !ok {
			continue
		}
		key, file, ok := strings.Cut(rest, "/")
		if !ok || strings.Contains(file, "/") {
			continue
		}
		so := out[key]
		if so == nil {
			so = &stepObjects{key: key}
			out[key] = so
		}
		so.all = append(so.all, o.Name)
		num, kind, ok := strings.Cut(file, ".")
		n, err := strconv.Atoi(num)
		if !ok || err != nil || n < 1 || strconv.Itoa(n) != num {
			continue
		}
		switch kind {
		case "log":
			so.logs = append(so.logs, n)
		case "start", "end":
			if n > so.latest {
				so.latest, so.ended = n, false
			}
			if n == so.latest && kind == "end" {
				so.ended = true
			}
		}
	}
	return out
}

// readAttempt reads attempt n's end record, or its start record.
func (s *Session) readAttempt(ctx context.Context, key string, n int, ended bool) (*checkpoint.Attempt, error) {
	kind := "start"
	if ended {
		kind = "end"
	}
	name := attemptObject(key, n, kind)
	data, _, err := s.b.ReadHead(ctx, name, checkpoint.MaxAttemptSize+1)
	if err != nil {
		return nil, s.errorf("read %s: %w", name, err)
	}
	a, err := checkpoint.DecodeAttempt(data)
	if err != nil {
		return nil, s.errorf("%s: %w", name, err)
	}
	return a, nil
}

// latestAttempt returns the step's latest attempt as recorded, nil if it
// has none, with a running attempt whose claim is gone shown as crashed
// (and crashed set).
func (s *Session) latestAttempt(ctx context.Context, so *stepObjects) (a *checkpoint.Attempt, crashed bool, err error) {
	if so == nil || so.latest == 0 {
		return nil, false, nil
	}
	if a, err = s.readAttempt(ctx, so.key, so.latest, so.ended); err != nil || a.State == checkpoint.StepPassed {
		return a, false, err
	}
	l, err := s.b.InspectLock(ctx, claimName(so.key))
	if err != nil {
		return nil, false, s.errorf("step %s: %w", a.Step, err)
	}
	live := l != nil && !l.Stale
	switch {
	case a.State != checkpoint.StepRunning && live:
		// Ended, but claimed again: a retry or another run is starting.
		r := *a
		r.State, r.Exit, r.Duration, r.Owner, r.Note = checkpoint.StepRunning, -1, 0, l.Owner, "claimed again after attempt "+strconv.Itoa(a.N)
		return &r, false, nil
	case a.State != checkpoint.StepRunning, live:
		return a, false, nil
	}
	// The claim is gone or stale: unless the attempt ended meanwhile, its
	// runner died without recording its end.
	if end, err := s.readAttempt(ctx, so.key, so.latest, true); err == nil {
		return end, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	c := a.Ended(checkpoint.StepCrashed, -1, 0, crashNote(a.Owner, l))
	return &c, true, nil
}

func crashNote(owner *checkpoint.Owner, l *Lock) string {
	why := "its claim is gone"
	if l != nil {
		why = l.Reason
	}
	return fmt.Sprintf("%s stopped without recording an end: %s", owner, why)
}

// Steps returns every step of the session: its run records, and the
// steps recorded in the manifest by versions before run records, in the
// order they first started. A running step whose runner is gone shows as
// crashed.
func (s *Session) Steps(ctx context.Context) ([]checkpoint.Step, error) {
	h, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	return s.steps(ctx, h)
}

// steps is Steps with the session's header already read.
func (s *Session) steps(ctx context.Context, h *checkpoint.Header) ([]checkpoint.Step, error) {
	objs, err := s.b.ListUnder(ctx, StepDir)
	if err != nil {
		return nil, s.errorf("list steps: %w", err)
	}
	groups := parseStepObjects(objs)
	keys := make([]string, 0, len(groups))
	for k, so := range groups {
		if so.latest > 0 {
			keys = append(keys, k)
		}
	}
	views := make([]checkpoint.Step, len(keys))
	errs := make([]error, len(keys))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, k := range keys {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, _, err := s.latestAttempt(ctx, groups[k])
			switch {
			case err == nil:
				views[i] = a.View()
			case ctx.Err() == nil && !errors.Is(err, ErrNotFound):
				// One damaged step is shown as such, not fatal to the
				// listing.
				views[i] = checkpoint.Step{Name: stepName(k), State: StepDamaged, Exit: -1, Note: err.Error()}
			default:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	seen := make(map[string]bool, len(views))
	for _, v := range views {
		seen[v.Name] = true
	}
	if h != nil {
		for _, st := range h.Steps {
			if !seen[st.Name] {
				st.First = st.Started
				views = append(views, st)
			}
		}
	}
	slices.SortStableFunc(views, func(a, b checkpoint.Step) int {
		return cmp.Or(a.First.Compare(b.First), cmp.Compare(a.Name, b.Name))
	})
	return views, nil
}

// Step returns the step called name as Steps shows it; nil if it was never
// recorded.
func (s *Session) Step(ctx context.Context, name string) (*checkpoint.Step, error) {
	a, legacy, _, err := s.stepState(ctx, name)
	switch {
	case err != nil:
		return nil, err
	case a != nil:
		v := a.View()
		return &v, nil
	}
	return legacy, nil
}

// stepState reads one step: its latest attempt, or, when it has none, its
// record in the manifest (from before run records).
func (s *Session) stepState(ctx context.Context, name string) (*checkpoint.Attempt, *checkpoint.Step, *stepObjects, error) {
	if !checkpoint.ValidStepName(name) {
		return nil, nil, nil, s.errorf("invalid step name %q: %s", name, checkpoint.StepNameRule)
	}
	key := stepKey(name)
	objs, err := s.b.ListUnder(ctx, StepDir+"/"+key)
	if err != nil {
		return nil, nil, nil, s.errorf("step %s: %w", name, err)
	}
	so := parseStepObjects(objs)[key]
	if so == nil {
		so = &stepObjects{key: key}
	}
	a, _, err := s.latestAttempt(ctx, so)
	if err != nil || a != nil {
		return a, nil, so, err
	}
	legacy, err := s.legacySteps(ctx)
	if err != nil {
		return nil, nil, so, err
	}
	for i := range legacy {
		if legacy[i].Name == name {
			return nil, &legacy[i], so, nil
		}
	}
	return nil, nil, so, nil
}

// legacySteps returns the steps recorded in the manifest by versions before
// run records, read once per Session: this version never writes them.
func (s *Session) legacySteps(ctx context.Context) ([]checkpoint.Step, error) {
	s.legacy.Lock()
	defer s.legacy.Unlock()
	if s.legacy.read {
		return s.legacy.steps, nil
	}
	h, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	if h != nil {
		s.legacy.steps = h.Steps
	}
	s.legacy.read = true
	return s.legacy.steps, nil
}

// StepOptions says what a step runs for and how StartStep treats a step
// whose earlier attempts crashed.
type StepOptions struct {
	// Identity is what this run is for: a key and a command line. A step
	// that passed for it is skipped.
	Identity checkpoint.Identity
	// NoReturn records an attempt found crashed as passed: the step is one
	// whose run ends the process (a reboot), as checkbox's noreturn jobs.
	NoReturn bool
	// MaxAttempts, when above 0, gives up a step once that many attempts
	// in a row have crashed or failed: StartStep records it failed
	// without running it.
	MaxAttempts int
	// Command names the process in owner records, such as "ckpt step".
	Command string
	// Runner names who runs it in a fleet, such as a CI node (recorded in
	// each attempt; optional).
	Runner string
	// Fleet, when set, names a fleet run (ckpt queue --fleet): a step
	// whose latest attempt for this identity failed in the same fleet is
	// left alone (StepEnded), so that the fleet runs a failing step once,
	// while a later fleet (a retry) runs it again.
	Fleet string
	// FailedSince, when set and Fleet is not, does the same for a step
	// whose latest attempt for this identity failed at or after it.
	FailedSince time.Time
}

// StepAction is what StartStep decided.
type StepAction int

const (
	// StepRun: the step is claimed and its attempt recorded as running;
	// the caller runs it, then calls End.
	StepRun StepAction = iota
	// StepSkip: it passed for this identity; nothing is held.
	StepSkip
	// StepGiveUp: MaxAttempts attempts in a row crashed or failed; it was
	// recorded failed, and nothing is held.
	StepGiveUp
	// StepEnded: it failed for this identity in this fleet
	// (StepOptions.Fleet, FailedSince); nothing is held.
	StepEnded
)

// StepRun is one claim of a step, as StartStep returns it.
type StepClaim struct {
	// Action is what the caller is to do.
	Action StepAction
	// Prev is the step as it was before this claim; nil if never run.
	Prev *checkpoint.Step
	// Crashed is the attempt this claim found dead and ended: crashed, or
	// passed with NoReturn. Nil if there was none.
	Crashed *checkpoint.Attempt
	// Attempt is the running attempt (StepRun), or the record that
	// decided a skip or a give-up.
	Attempt checkpoint.Attempt

	s       *Session
	key     string
	held    Held
	started time.Time
	mu      sync.Mutex
}

// StartStep decides whether step name is to run for o.Identity, and, if so,
// claims it for this process and records the start of a new attempt.
//
// A step that passed for the identity is skipped (StepSkip). Otherwise
// StartStep takes the step's claim: while another live process holds it,
// it fails with a *LockedError naming that process (with Step set); a claim
// whose process is gone is broken, and that process's attempt recorded as
// crashed (or passed, with NoReturn). With MaxAttempts reached it records
// the step failed (StepGiveUp). Otherwise it records attempt N+1 as running
// and returns the claim held (StepRun): the caller runs the step and ends
// the attempt with End, or starts another with Retry. The claim is
// renewed until then where it is a lease.
func (s *Session) StartStep(ctx context.Context, name string, o StepOptions) (*StepClaim, error) {
	if err := o.Identity.Validate(); err != nil {
		return nil, s.errorf("step %s: %w", name, err)
	}
	a, legacy, so, err := s.stepState(ctx, name)
	if err != nil {
		return nil, err
	}
	c := &StepClaim{s: s, key: so.key, Attempt: checkpoint.Attempt{Step: name}}
	if a != nil {
		v := a.View()
		c.Prev = &v
	} else {
		c.Prev = legacy
	}
	if c.Prev != nil {
		if _, ok := c.Prev.PassedFor(o.Identity); ok {
			c.Action = StepSkip
			if a != nil {
				c.Attempt = *a
			}
			return c, nil
		}
	}
	if a != nil && endedSince(a, o) {
		c.Action, c.Attempt = StepEnded, *a
		return c, nil
	}
	if a != nil && a.State == checkpoint.StepRunning {
		// latestAttempt found its claim live: refused without trying.
		return nil, &LockedError{Session: s.b.ID(), Step: name, Lock: Lock{Owner: a.Owner, Since: a.Started,
			Reason: "its runner holds the claim"}}
	}
	if err := c.claim(ctx, name, o); err != nil {
		return nil, err
	}
	if err := c.decide(ctx, name, o, legacy); err != nil {
		return nil, errors.Join(err, c.release(ctx))
	}
	if c.Action != StepRun {
		return c, c.release(ctx)
	}
	return c, nil
}

// claim takes the step's claim, breaking one whose process is gone.
func (c *StepClaim) claim(ctx context.Context, name string, o StepOptions) error {
	owner := CurrentOwner(cmp.Or(o.Command, "step "+name), c.s.now())
	for range 3 {
		held, err := c.s.b.Lock(ctx, claimName(c.key), owner)
		var le *LockedError
		switch {
		case err == nil:
			c.held = held
			return nil
		case !errors.As(err, &le):
			return c.s.errorf("claim step %s: %w", name, err)
		case !le.Stale:
			le.Session, le.Step = c.s.b.ID(), name
			return le
		}
		if _, err := c.s.b.BreakLock(ctx, claimName(c.key), false); err != nil && !errors.As(err, &le) {
			return c.s.errorf("step %s: break the claim of a process that is gone: %w", name, err)
		}
	}
	return c.s.errorf("step %s: other processes kept claiming it", name)
}

// decide reads the step under the claim, ends an attempt whose runner died,
// and then skips, gives up or starts the next attempt.
func (c *StepClaim) decide(ctx context.Context, name string, o StepOptions, legacy *checkpoint.Step) error {
	objs, err := c.s.b.ListUnder(ctx, StepDir+"/"+c.key)
	if err != nil {
		return c.s.errorf("step %s: %w", name, err)
	}
	so := parseStepObjects(objs)[c.key]
	if so == nil {
		so = &stepObjects{key: c.key}
	}
	var last *checkpoint.Attempt
	if so.latest > 0 {
		if last, err = c.s.readAttempt(ctx, c.key, so.latest, so.ended); err != nil {
			return err
		}
	}
	if last != nil && last.State == checkpoint.StepRunning {
		// We hold the claim: the process that recorded this start is gone.
		state, note := checkpoint.StepCrashed, crashNote(last.Owner, nil)
		if last.NoReturn {
			state, note = checkpoint.StepPassed, fmt.Sprintf("passed without its end being seen (noreturn): %s did not come back", last.Owner)
		}
		end := last.Ended(state, -1, 0, note)
		if err := c.s.createRecord(ctx, c.key, &end, "end"); err != nil {
			return err
		}
		c.Crashed, last = &end, &end
	}
	if last != nil {
		if _, ok := last.PassedFor(o.Identity); ok {
			c.Action, c.Attempt = StepSkip, *last
			return nil
		}
		if endedSince(last, o) {
			c.Action, c.Attempt = StepEnded, *last
			return nil
		}
	}
	next := checkpoint.Attempt{
		Step: name, N: 1, State: checkpoint.StepRunning, Exit: -1, Identity: o.Identity,
		Owner: CurrentOwner(cmp.Or(o.Command, "step "+name), c.s.now()), Started: c.s.now().UTC(), Runner: o.Runner,
		Fleet: o.Fleet, NoReturn: o.NoReturn, Token: randomHex(12),
	}
	next.First = next.Started
	switch {
	case last != nil:
		next.N, next.Passed, next.Failures, next.First = last.N+1, last.Passed, last.FailuresAfter(), last.First
	case legacy != nil:
		next.Passed = legacy.Passed
		if len(next.Passed) == 0 && legacy.State == checkpoint.StepPassed {
			next.Passed = []checkpoint.Identity{legacy.Identity}
		}
		next.First = legacy.Started.UTC()
	}
	if o.MaxAttempts > 0 && next.Failures >= o.MaxAttempts {
		end := next.Ended(checkpoint.StepFailed, -1, 0, fmt.Sprintf("gave up after %d attempts", next.Failures))
		if err := c.s.createRecord(ctx, c.key, &end, "end"); err != nil {
			return err
		}
		c.Action, c.Attempt = StepGiveUp, end
		c.s.pruneAttempts(ctx, so, end.N)
		return nil
	}
	if err := c.s.createRecord(ctx, c.key, &next, "start"); err != nil {
		return err
	}
	c.Action, c.Attempt, c.started = StepRun, next, time.Now()
	c.s.pruneAttempts(ctx, so, next.N)
	return nil
}

// endedSince reports whether a, the latest attempt, failed or was
// interrupted for o.Identity at or after o.FailedSince.
func endedSince(a *checkpoint.Attempt, o StepOptions) bool {
	// An interrupted attempt (its runner stopped by a signal) is taken up
	// again, as a crashed one is.
	if a.State != checkpoint.StepFailed || a.Key != o.Identity.Key || !slices.Equal(a.Command, o.Identity.Command) {
		return false
	}
	switch {
	case o.Fleet != "":
		return a.Fleet == o.Fleet
	case !o.FailedSince.IsZero():
		return !a.Started.Add(a.Duration).Before(o.FailedSince)
	}
	return false
}

// createRecord writes an attempt's start or end record; it fails if the
// record exists.
func (s *Session) createRecord(ctx context.Context, key string, a *checkpoint.Attempt, kind string) error {
	data, err := checkpoint.EncodeAttempt(a)
	if err != nil {
		return s.errorf("%w", err)
	}
	name := attemptObject(key, a.N, kind)
	if _, err := s.b.Create(ctx, name, bytes.NewReader(data)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &LockedError{Session: s.b.ID(), Lost: true, Lock: Lock{Reason: fmt.Sprintf(
				"step %s: attempt %d was already ended by another process (this process's claim was broken, its run taken as crashed); this end is not recorded", a.Step, a.N)}}
		}
		return s.errorf("record step %s: %w", a.Step, err)
	}
	return nil
}

// pruneAttempts removes the records and logs of attempts before the last
// KeepAttempts. A failure leaves them for the next attempt to remove.
func (s *Session) pruneAttempts(ctx context.Context, so *stepObjects, current int) {
	var old []string
	for _, name := range so.all {
		file := name[strings.LastIndexByte(name, '/')+1:]
		num, _, _ := strings.Cut(file, ".")
		if n, err := strconv.Atoi(num); err == nil && n <= current-KeepAttempts {
			old = append(old, name)
		}
	}
	if len(old) > 0 {
		_ = s.b.Delete(ctx, old...)
	}
}

// OpenLog creates the running attempt's log, capped at limit bytes
// (DefaultLogLimit if limit <= 0): its head and its tail. Locally it is
// written as it comes; on S3 it is stored when closed.
func (c *StepClaim) OpenLog(ctx context.Context, limit int64) (io.WriteCloser, error) {
	if c.Action != StepRun {
		return nil, c.s.errorf("step %s: no attempt is running", c.Attempt.Step)
	}
	sink, err := c.s.b.CreateLog(ctx, attemptObject(c.key, c.Attempt.N, "log"))
	if err != nil {
		return nil, c.s.errorf("step %s: open log: %w", c.Attempt.Step, err)
	}
	return newLogWriter(sink, limit), nil
}

// End records how the running attempt ended (checkpoint.StepPassed,
// StepFailed or StepInterrupted, with the command's exit status) and lets
// go of the claim. If the claim was broken and the attempt ended by another
// process, it fails with a Lost *LockedError and records nothing.
func (c *StepClaim) End(ctx context.Context, state string, exit int) (checkpoint.Attempt, error) {
	end, err := c.end(ctx, state, exit)
	return end, errors.Join(err, c.release(ctx))
}

// Retry records the running attempt as failed with exit status exit and
// starts the next one under the same claim.
func (c *StepClaim) Retry(ctx context.Context, exit int) error {
	end, err := c.end(ctx, checkpoint.StepFailed, exit)
	if err != nil {
		return err
	}
	next := end
	next.N, next.State, next.Exit, next.Duration, next.Note = end.N+1, checkpoint.StepRunning, -1, 0, ""
	next.Failures = end.FailuresAfter()
	next.Started = c.s.now().UTC()
	next.Token = randomHex(12)
	if err := c.s.createRecord(ctx, c.key, &next, "start"); err != nil {
		return err
	}
	if objs, err := c.s.b.ListUnder(ctx, StepDir+"/"+c.key); err == nil {
		if so := parseStepObjects(objs)[c.key]; so != nil {
			c.s.pruneAttempts(ctx, so, next.N)
		}
	}
	c.mu.Lock()
	c.Attempt, c.started, c.Action = next, time.Now(), StepRun
	c.mu.Unlock()
	return nil
}

func (c *StepClaim) end(ctx context.Context, state string, exit int) (checkpoint.Attempt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Action != StepRun || c.held == nil {
		return checkpoint.Attempt{}, c.s.errorf("step %s: no attempt is running under this claim", c.Attempt.Step)
	}
	switch state {
	case checkpoint.StepPassed, checkpoint.StepFailed, checkpoint.StepInterrupted:
	default:
		return checkpoint.Attempt{}, c.s.errorf("step %s: an attempt cannot end as %q", c.Attempt.Step, state)
	}
	if err := c.held.Check(ctx); err != nil {
		return checkpoint.Attempt{}, err
	}
	end := c.Attempt.Ended(state, exit, time.Since(c.started), "")
	if err := c.s.createRecord(ctx, c.key, &end, "end"); err != nil {
		return checkpoint.Attempt{}, err
	}
	c.Attempt, c.Action = end, StepSkip
	return end, nil
}

// Release lets go of the claim without recording an end: the attempt stays
// running, and the next claim records it crashed. It does nothing after
// End, or a second time.
func (c *StepClaim) Release(ctx context.Context) error { return c.release(ctx) }

func (c *StepClaim) release(ctx context.Context) error {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.mu.Unlock()
	if held == nil {
		return nil
	}
	return held.Release(context.WithoutCancel(ctx))
}

// StepLog opens the log of attempt n of step name (the latest attempt that
// has one when n is 0); ErrNoLog if there is none. A step recorded before
// run records has its one log in LogDir.
func (s *Session) StepLog(ctx context.Context, name string, n int) (io.ReadCloser, int, error) {
	if !checkpoint.ValidStepName(name) {
		return nil, 0, s.errorf("invalid step name %q: %s", name, checkpoint.StepNameRule)
	}
	key := stepKey(name)
	objs, err := s.b.ListUnder(ctx, StepDir+"/"+key)
	if err != nil {
		return nil, 0, s.errorf("step %s: %w", name, err)
	}
	var logs []int
	if so := parseStepObjects(objs)[key]; so != nil {
		logs = so.logs
	}
	if n == 0 && len(logs) > 0 {
		n = slices.Max(logs)
	}
	obj := attemptObject(key, n, "log")
	if n == 0 {
		if !checkpoint.ValidName(name) {
			return nil, 0, s.errorf("step %s: %w", name, ErrNoLog)
		}
		obj = LogDir + "/" + name + ".log"
	}
	r, err := s.b.OpenLog(ctx, obj)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.b.Check(ctx); err != nil {
			return nil, 0, err
		}
		if n > 0 {
			return nil, 0, s.errorf("step %s: attempt %d: %w (the last %d attempts keep theirs)", name, n, ErrNoLog, KeepAttempts)
		}
		return nil, 0, s.errorf("step %s: %w", name, ErrNoLog)
	}
	if err != nil {
		return nil, 0, s.errorf("%w", err)
	}
	return r, n, nil
}

// Attempts returns every kept attempt of every step (the last KeepAttempts
// of each), ordered by start: what a timeline of the run shows. An attempt
// whose runner is gone without recording its end shows as crashed, as in
// Steps.
func (s *Session) Attempts(ctx context.Context) ([]checkpoint.Attempt, error) {
	objs, err := s.b.ListUnder(ctx, StepDir)
	if err != nil {
		return nil, s.errorf("list steps: %w", err)
	}
	type ref struct {
		key   string
		n     int
		ended bool
	}
	var refs []ref
	ends := map[string]bool{}
	for _, o := range objs {
		if strings.HasSuffix(o.Name, ".end") {
			ends[strings.TrimSuffix(o.Name, ".end")] = true
		}
	}
	for _, o := range objs {
		rest, _ := strings.CutPrefix(o.Name, StepDir+"/")
		key, file, ok := strings.Cut(rest, "/")
		if !ok {
			continue
		}
		num, kind, _ := strings.Cut(file, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || strconv.Itoa(n) != num {
			continue
		}
		base := strings.TrimSuffix(o.Name, "."+kind)
		switch {
		case kind == "end":
			refs = append(refs, ref{key, n, true})
		case kind == "start" && !ends[base]:
			refs = append(refs, ref{key, n, false})
		}
	}
	out := make([]checkpoint.Attempt, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i, r := range refs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			a, err := s.readAttempt(ctx, r.key, r.n, r.ended)
			if errors.Is(err, fs.ErrNotExist) {
				return // pruned since the listing
			}
			if err == nil && a.State == checkpoint.StepRunning {
				// Only the latest attempt can be running; judge its claim.
				so := &stepObjects{key: r.key, latest: r.n}
				a, _, err = s.latestAttempt(ctx, so)
			}
			if err == nil {
				out[i] = *a
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out = slices.DeleteFunc(out, func(a checkpoint.Attempt) bool { return a.Step == "" })
	slices.SortFunc(out, func(a, b checkpoint.Attempt) int {
		return cmp.Or(a.Started.Compare(b.Started), cmp.Compare(a.Step, b.Step), cmp.Compare(a.N, b.N))
	})
	return out, nil
}

// BreakStepClaim removes the claim of step name if the process that holds
// it is gone, or, with force, even if it lives, and returns what it
// removed; nil, nil if there was none. Its attempt is then recorded crashed
// by the next StartStep. A live claim without force is a *LockedError.
func (s *Session) BreakStepClaim(ctx context.Context, name string, force bool) (*Lock, error) {
	if !checkpoint.ValidStepName(name) {
		return nil, s.errorf("invalid step name %q: %s", name, checkpoint.StepNameRule)
	}
	if err := s.b.Check(ctx); err != nil {
		return nil, err
	}
	l, err := s.b.BreakLock(ctx, claimName(stepKey(name)), force)
	var le *LockedError
	if errors.As(err, &le) {
		le.Session, le.Step = s.b.ID(), name
		return nil, le
	}
	if err != nil {
		return nil, s.errorf("step %s: break claim: %w", name, err)
	}
	return l, nil
}
