package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// StepCrashed is the state of an attempt whose process died before it could
// record its end: found by the next one to claim the step, or by a reader
// that sees its claim gone.
const StepCrashed = "crashed"

// MaxStepNameLen bounds a step name, in bytes.
const MaxStepNameLen = 150

// ValidStepName reports whether s can name a step: 1 to MaxStepNameLen bytes
// of UTF-8 without control characters, not starting with '-' (which would
// read as a flag) or a space. Go test names (TestFoo/sub_case#01) are
// step names as they are.
func ValidStepName(s string) bool {
	if s == "" || len(s) > MaxStepNameLen || !utf8.ValidString(s) || s[0] == '-' || s[0] == ' ' {
		return false
	}
	return !strings.ContainsFunc(s, unicode.IsControl)
}

// StepNameRule says what ValidStepName accepts, for messages.
const StepNameRule = "a step name is 1 to 150 bytes of UTF-8 without control characters, not starting with '-' or a space"

// Attempt is the run record of one attempt of a step. Its start is written
// once, as the attempt starts (State running), and its end once, when it
// ends or is found crashed; neither is ever changed.
type Attempt struct {
	Step string `json:"step"`
	// N numbers the step's attempts from 1, across invocations.
	N     int    `json:"attempt"`
	State string `json:"state"`
	// Exit is the command's exit status; -1 while it runs, or when it did
	// not run (crashed, given up).
	Exit int `json:"exit"`
	// Identity is what this attempt runs for.
	Identity
	// Passed lists the identities the step has passed for, newest first,
	// at most MaxPassed, this attempt's included once it passed.
	Passed []Identity `json:"passed,omitempty"`
	// Failures counts the attempts that crashed or failed in a row before
	// this one, since the step last passed.
	Failures int `json:"failures"`
	// Owner is the process that ran the attempt.
	Owner *Owner `json:"owner,omitempty"`
	// Runner names who ran it in a fleet (ckpt queue --runner), such as a
	// CI node; empty when not given.
	Runner string `json:"runner,omitempty"`
	// Fleet names the fleet run it belongs to (ckpt queue --fleet): a
	// failure is final for the rest of that fleet.
	Fleet string `json:"fleet,omitempty"`
	// NoReturn marks an attempt whose run ends the process (a reboot): if
	// it is found dead, it passed.
	NoReturn bool `json:"noreturn,omitempty"`
	// Token is random; the attempt's command gets it as $CKPT_ATTEMPT, so
	// that the processes an attempt left behind can be told apart.
	Token string `json:"token,omitempty"`
	// First is when the step's first attempt started.
	First   time.Time `json:"first"`
	Started time.Time `json:"started"`
	// Duration is how long the attempt ran; zero until it ended.
	Duration time.Duration `json:"duration_ns"`
	// Note says why an attempt ended as it did when its command did not
	// say so: who found it crashed, why it was given up.
	Note string `json:"note,omitempty"`
}

// MaxAttemptSize bounds an encoded attempt record.
const MaxAttemptSize = 256 << 10

// EncodeAttempt returns a's record, after checking it.
func EncodeAttempt(a *Attempt) ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(a)
}

// DecodeAttempt parses and checks an attempt record.
func DecodeAttempt(data []byte) (*Attempt, error) {
	if len(data) > MaxAttemptSize {
		return nil, fmt.Errorf("attempt record is %d bytes, the limit is %d", len(data), MaxAttemptSize)
	}
	var a Attempt
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("attempt record: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("attempt record: %w", err)
	}
	return &a, nil
}

// Validate reports whether a can be recorded.
func (a *Attempt) Validate() error {
	switch {
	case !ValidStepName(a.Step):
		return fmt.Errorf("invalid step name %q: %s", a.Step, StepNameRule)
	case a.N < 1:
		return fmt.Errorf("step %q: attempt %d, want 1 or more", a.Step, a.N)
	case a.Failures < 0 || a.Duration < 0:
		return fmt.Errorf("step %q: negative count or duration", a.Step)
	case len(a.Passed) > MaxPassed:
		return fmt.Errorf("step %q: %d identities passed, the limit is %d", a.Step, len(a.Passed), MaxPassed)
	case len(a.Runner) > MaxNameLen || !utf8.ValidString(a.Runner) || len(a.Fleet) > MaxNameLen || !utf8.ValidString(a.Fleet) || len(a.Token) > 64:
		return fmt.Errorf("step %q: runner and fleet must be valid UTF-8 of at most %d bytes", a.Step, MaxNameLen)
	case len(a.Note) > MaxTitleLen || !utf8.ValidString(a.Note):
		return fmt.Errorf("step %q: note must be valid UTF-8 of at most %d bytes", a.Step, MaxTitleLen)
	}
	switch a.State {
	case StepRunning, StepPassed, StepFailed, StepInterrupted, StepCrashed:
	default:
		return fmt.Errorf("step %q has unknown state %q", a.Step, a.State)
	}
	var errs []error
	for _, id := range append([]Identity{a.Identity}, a.Passed...) {
		errs = append(errs, id.Validate())
	}
	for _, t := range []time.Time{a.First, a.Started} {
		if _, err := t.MarshalText(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("step %q: %w", a.Step, err)
	}
	return nil
}

// PassedFor returns the identity a says the step passed for that want
// matches, if any: the same key and the same command line. (Only a record
// from before identities, carried over, has no command line, and stands for
// any.)
func (a *Attempt) PassedFor(want Identity) (Identity, bool) {
	for _, id := range a.Passed {
		if id.Matches(want) {
			return id, true
		}
	}
	return Identity{}, false
}

// View returns the step as a records it, for listings.
func (a *Attempt) View() Step {
	return Step{
		Name:     a.Step,
		State:    a.State,
		Exit:     a.Exit,
		Attempts: a.N,
		Started:  a.Started,
		Duration: a.Duration,
		Identity: a.Identity,
		Passed:   a.Passed,
		Owner:    a.Owner,
		Note:     a.Note,
		First:    a.First,
	}
}

// Ended returns a, the start record of an attempt, ended in state with exit
// status exit after d: a pass adds its identity to Passed, and a crash or
// failure counts towards Failures of the next attempt.
func (a Attempt) Ended(state string, exit int, d time.Duration, note string) Attempt {
	a.State, a.Exit, a.Duration, a.Note = state, exit, d, note
	if state == StepPassed {
		a.Passed = Step{Identity: a.Identity, Passed: a.Passed}.WithPass().Passed
	}
	return a
}

// FailuresAfter returns how many attempts in a row have crashed or failed
// once a has ended. A step given up (failed without running: Exit -1) adds
// none.
func (a *Attempt) FailuresAfter() int {
	switch {
	case a.State == StepPassed:
		return 0
	case a.State == StepCrashed, a.State == StepFailed && a.Exit >= 0:
		return a.Failures + 1
	}
	return a.Failures
}
