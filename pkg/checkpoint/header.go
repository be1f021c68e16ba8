package checkpoint

import (
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Header is the metadata of a checkpoint. It is stored as JSON: in format 2
// it is the whole manifest, in format 1 it heads the file, so either way it
// can be read without reading the payload.
type Header struct {
	// Generation counts saves: 0 for a session that was created but never
	// saved, 1 after the first save, and one more after each save.
	Generation uint64 `json:"generation"`
	// Saved is when this generation was written.
	Saved time.Time `json:"saved"`
	// Created is when the session was created; it is carried from generation
	// to generation.
	Created time.Time `json:"created"`
	// Title is a free-form, one-line description.
	Title string `json:"title,omitempty"`
	// Flags is a sorted set of short words such as "incomplete" or "submitted".
	Flags []string `json:"flags,omitempty"`
	// App names the application that owns the payload format.
	App string `json:"app,omitempty"`
	// Owner is the process that wrote this file. In a session.next file it
	// identifies the lock holder.
	Owner *Owner `json:"owner,omitempty"`
	// Steps records the steps of a resumable run, in the order they first
	// ran. Names are unique.
	Steps []Step `json:"steps,omitempty"`
	// NoPayload marks a generation that only changed metadata (a step
	// record, a flag) of a session that has no payload saved yet: like
	// generation 0, it has no checkpoint to load.
	NoPayload bool `json:"no_payload,omitempty"`
	// Payload names the payload object of a format-2 generation. It is nil
	// when the generation has no payload (generation 0, NoPayload) and in
	// headers read from format 1, whose payload is inline.
	Payload *Payload `json:"payload,omitempty"`
	// Key is what the session runs for (a commit, a hash of inputs), set
	// by create --key: last, list and gc select sessions by it.
	Key string `json:"key,omitempty"`
	// Kept lists the older generations kept as history, newest first, with
	// the payload object each names ("" for a format-1 file, which holds
	// its payload): what this generation keeps reachable.
	Kept []Kept `json:"kept,omitempty"`
	// Format is the format version the header was read from (1 or 2); it is
	// 0 for a header built in memory. It is not stored.
	Format uint32 `json:"-"`
}

// Kept is a generation kept as history, as a manifest names it.
type Kept struct {
	Generation uint64 `json:"generation"`
	Payload    string `json:"payload,omitempty"`
}

// Payload names the payload of a format-2 manifest: an object of the same
// session. Objects are immutable, so generations that share a payload share
// its bytes, and a change of metadata never reads, hashes or copies them.
type Payload struct {
	// Object is the object's name, within the rules of ValidName, e.g.
	// "payload-3f2a9c…".
	Object string `json:"object"`
	// Size is the object's length in bytes.
	Size int64 `json:"size"`
	// SHA256 is the SHA-256 of the object's bytes, 64 lowercase hex digits
	// (see NewPayloadHash and PayloadSum).
	SHA256 string `json:"sha256"`
}

func (p *Payload) validate() error {
	if !ValidName(p.Object) {
		return fmt.Errorf("invalid payload object name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", p.Object, MaxNameLen)
	}
	if p.Size < 0 {
		return fmt.Errorf("payload %s has a negative size %d", p.Object, p.Size)
	}
	if !isSHA256Hex(p.SHA256) {
		return fmt.Errorf("payload %s: SHA-256 %q is not 64 lowercase hex digits", p.Object, p.SHA256)
	}
	return nil
}

// Step is the record of one step of a resumable run.
type Step struct {
	Name string `json:"name"`
	// State is one of the Step states below.
	State string `json:"state"`
	// Exit is the command's exit status; -1 while it runs or when it did
	// not run.
	Exit int `json:"exit"`
	// Attempts counts the step's attempts: in a run record, across
	// invocations; in a header record (before run records), the runs of
	// its last invocation.
	Attempts int `json:"attempts"`
	// Started is when the last attempt started.
	Started time.Time `json:"started"`
	// Duration is how long the last attempt ran (in a header record, its
	// invocation, retries included).
	Duration time.Duration `json:"duration_ns"`
	// Identity is what the last attempt ran for: a key and a command
	// line.
	Identity
	// Passed lists the identities the step has passed for, newest first,
	// at most MaxPassed: it is skipped only for one of them.
	Passed []Identity `json:"passed,omitempty"`
	// Owner is the process that ran the last attempt (run records only).
	Owner *Owner `json:"owner,omitempty"`
	// Note says why the last attempt ended as it did, when its command
	// did not say so.
	Note string `json:"note,omitempty"`
	// First is when the step's first attempt started (run records only).
	First time.Time `json:"first,omitzero"`
}

// Identity is what a step runs for: a key (a commit, a hash of inputs) and
// its command line. A record written before identities existed has neither,
// and stands for any command line with no key.
type Identity struct {
	Key     string   `json:"key,omitempty"`
	Command []string `json:"command,omitempty"`
}

// Matches reports whether a step that passed for id may be skipped for
// want: the same key and the same command line, or, for a record from
// before identities, no key.
func (id Identity) Matches(want Identity) bool {
	if id.Key != want.Key {
		return false
	}
	return id.Command == nil || slices.Equal(id.Command, want.Command)
}

// PassedFor returns the identity s passed for that want matches, if any.
func (s *Step) PassedFor(want Identity) (Identity, bool) {
	for _, id := range s.Passed {
		if id.Matches(want) {
			return id, true
		}
	}
	if s.State == StepPassed && len(s.Passed) == 0 && s.Identity.Matches(want) {
		return s.Identity, true
	}
	return Identity{}, false
}

// WithPass returns s recorded as passed for its identity: the identity
// joins Passed, newest first, once.
func (s Step) WithPass() Step {
	passed := []Identity{s.Identity}
	for _, id := range s.Passed {
		if len(passed) == MaxPassed {
			break
		}
		if id.Key != s.Key || !slices.Equal(id.Command, s.Command) {
			passed = append(passed, id)
		}
	}
	s.Passed = passed
	return s
}

// Limits on step identities.
const (
	// MaxKeyLen bounds a key: a commit id, a hash of inputs.
	MaxKeyLen = 512
	// MaxCommandLen bounds a recorded command line, all arguments.
	MaxCommandLen = 8 << 10
	// MaxPassed bounds the identities a step remembers passing for.
	MaxPassed = 16
)

// Validate reports whether id can be recorded.
func (id Identity) Validate() error {
	if len(id.Key) > MaxKeyLen || !utf8.ValidString(id.Key) {
		return fmt.Errorf("key must be valid UTF-8 of at most %d bytes", MaxKeyLen)
	}
	n := 0
	for _, a := range id.Command {
		n += len(a)
		if !utf8.ValidString(a) {
			return fmt.Errorf("command line must be valid UTF-8")
		}
	}
	if n > MaxCommandLen {
		return fmt.Errorf("command line is %d bytes, the limit is %d", n, MaxCommandLen)
	}
	return nil
}

// Step states.
const (
	StepRunning     = "running"
	StepPassed      = "passed"
	StepFailed      = "failed"
	StepInterrupted = "interrupted"
)

// MaxSteps bounds the steps recorded in one header.
const MaxSteps = 4096

// MaxNameLen bounds a name: a session id or a step name.
const MaxNameLen = 128

// ValidName reports whether s is a safe file name as ckpt names things
// (session ids, step names): lowercase letters, digits, '-', '_' and '.', not
// starting with '.', at most MaxNameLen bytes.
func ValidName(s string) bool {
	return len(s) <= MaxNameLen && s != "" && s[0] != '.' && allNameBytes(s)
}

// Step returns the record of the step called name, or nil.
func (h *Header) Step(name string) *Step {
	for i := range h.Steps {
		if h.Steps[i].Name == name {
			return &h.Steps[i]
		}
	}
	return nil
}

// WithStep returns the steps of h with s added, or replacing the record of
// the same name in place. h.Steps is not modified.
func (h *Header) WithStep(s Step) []Step {
	out := slices.Clone(h.Steps)
	for i := range out {
		if out[i].Name == s.Name {
			out[i] = s
			return out
		}
	}
	return append(out, s)
}

// Owner identifies the process that writes a checkpoint.
type Owner struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	User    string    `json:"user,omitempty"`
	Started time.Time `json:"started"`
	Command string    `json:"command,omitempty"`
}

func (o *Owner) String() string {
	if o == nil {
		return "an unknown process"
	}
	s := fmt.Sprintf("pid %d on %s", o.PID, o.Host)
	if o.Command != "" {
		s += fmt.Sprintf(" (%s)", o.Command)
	}
	if !o.Started.IsZero() {
		s += " since " + o.Started.UTC().Format(time.RFC3339)
	}
	return s
}

// Limits on header fields. They keep a header small enough to be read on every
// listing and stop a damaged or hostile file from making a reader allocate
// without bound.
const (
	MaxHeaderSize = 1 << 20
	MaxTitleLen   = 1024
	MaxAppLen     = 128
	MaxFlags      = 64
	MaxFlagLen    = 32
	// MaxKept bounds the generations a manifest keeps as history.
	MaxKept = 1000
	// MaxOwnerFieldLen bounds an owner's host, user and command.
	MaxOwnerFieldLen = 1024
)

// ValidFlag reports whether f can be used as a flag: lowercase letters,
// digits, '-', '_' and '.', starting with a letter or digit, at most
// MaxFlagLen bytes.
func ValidFlag(f string) bool {
	return len(f) <= MaxFlagLen && f != "" && isLowerAlnum(f[0]) && allNameBytes(f)
}

// isLowerAlnum reports whether c is a lowercase ASCII letter or a digit.
// Names, flags and hashes are checked byte by byte, not with regexps, which
// would be compiled when the package is initialised: in every ckpt process,
// whether it checks a name or not.
func isLowerAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// allNameBytes reports whether s is made of lowercase letters, digits, '-',
// '_' and '.' only.
func allNameBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isSHA256Hex reports whether s is 64 lowercase hex digits.
func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Validate reports whether h can be written: flags are valid, sorted and
// unique, text fields are valid UTF-8 within their limits, and a Payload, if
// set, has a valid object name, a size of at least 0 and a SHA-256 of 64
// lowercase hex digits, and is not set together with NoPayload.
func (h *Header) Validate() error {
	if p := h.Payload; p != nil {
		if err := p.validate(); err != nil {
			return err
		}
		if h.NoPayload {
			return fmt.Errorf("no_payload is set, but the header names payload %s", p.Object)
		}
	}
	if len(h.Kept) > MaxKept {
		return fmt.Errorf("%d kept generations, the limit is %d", len(h.Kept), MaxKept)
	}
	for _, k := range h.Kept {
		// A name read from a header becomes an object name: hold it to
		// the same rules as Payload.Object.
		if k.Payload != "" && !ValidName(k.Payload) {
			return fmt.Errorf("invalid payload object name %q kept for generation %d", k.Payload, k.Generation)
		}
	}
	if len(h.Key) > MaxKeyLen || !utf8.ValidString(h.Key) {
		return fmt.Errorf("key must be valid UTF-8 of at most %d bytes", MaxKeyLen)
	}
	if len(h.Title) > MaxTitleLen {
		return fmt.Errorf("title is %d bytes, the limit is %d", len(h.Title), MaxTitleLen)
	}
	if !utf8.ValidString(h.Title) {
		return fmt.Errorf("title is not valid UTF-8")
	}
	if len(h.App) > MaxAppLen || !utf8.ValidString(h.App) {
		return fmt.Errorf("app id must be valid UTF-8 of at most %d bytes", MaxAppLen)
	}
	if len(h.Steps) > MaxSteps {
		return fmt.Errorf("%d steps, the limit is %d", len(h.Steps), MaxSteps)
	}
	times := []time.Time{h.Saved, h.Created, h.owner().Started}
	seen := make(map[string]bool, len(h.Steps))
	for _, st := range h.Steps {
		if !ValidName(st.Name) {
			return fmt.Errorf("invalid step name %q: names are lowercase letters, digits, '-', '_' and '.', not starting with '.', at most %d characters", st.Name, MaxNameLen)
		}
		if seen[st.Name] {
			return fmt.Errorf("step %q recorded twice", st.Name)
		}
		seen[st.Name] = true
		switch st.State {
		case StepRunning, StepPassed, StepFailed, StepInterrupted:
		default:
			return fmt.Errorf("step %q has unknown state %q", st.Name, st.State)
		}
		if len(st.Passed) > MaxPassed {
			return fmt.Errorf("step %q: %d identities passed, the limit is %d", st.Name, len(st.Passed), MaxPassed)
		}
		for _, id := range append([]Identity{st.Identity}, st.Passed...) {
			if err := id.Validate(); err != nil {
				return fmt.Errorf("step %q: %w", st.Name, err)
			}
		}
		times = append(times, st.Started)
	}
	for _, t := range times {
		// Decoding accepts times that encoding refuses (an offset of
		// +24:00, year 10000): refuse them both ways.
		if _, err := t.MarshalText(); err != nil {
			return fmt.Errorf("time %s cannot be stored: %w", t, err)
		}
	}
	if o := h.Owner; o != nil {
		for _, f := range []string{o.Host, o.User, o.Command} {
			if len(f) > MaxOwnerFieldLen || !utf8.ValidString(f) {
				return fmt.Errorf("owner fields must be valid UTF-8 of at most %d bytes", MaxOwnerFieldLen)
			}
		}
	}
	if len(h.Flags) > MaxFlags {
		return fmt.Errorf("%d flags, the limit is %d", len(h.Flags), MaxFlags)
	}
	for i, f := range h.Flags {
		if !ValidFlag(f) {
			return fmt.Errorf("invalid flag %q: flags are lowercase letters, digits, '-', '_' and '.', at most %d characters", f, MaxFlagLen)
		}
		if i > 0 && h.Flags[i-1] >= f {
			return fmt.Errorf("flags must be sorted and unique")
		}
	}
	return nil
}

func (h *Header) owner() *Owner {
	if h.Owner == nil {
		return &Owner{}
	}
	return h.Owner
}

// HasFlag reports whether f is set.
func (h *Header) HasFlag(f string) bool {
	_, found := slices.BinarySearch(h.Flags, f)
	return found
}

// SetFlags returns the flags of h with add set and remove cleared, sorted and
// without duplicates. A flag in both lists ends up cleared.
func (h *Header) SetFlags(add, remove []string) []string {
	out := slices.Concat(h.Flags, add)
	out = slices.DeleteFunc(out, func(f string) bool { return slices.Contains(remove, f) })
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}
