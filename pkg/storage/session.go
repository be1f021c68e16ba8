package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Session is one checkpointed session, whatever stores it.
type Session interface {
	// ID returns the session's id.
	ID() string
	// Stat returns the session's metadata and lock state without reading
	// the payload.
	Stat(ctx context.Context) (*Status, error)
	// Save reads payload to its end and commits it as the next generation.
	Save(ctx context.Context, payload io.Reader, opts ...SaveOption) (*Saved, error)
	// Begin takes the session's lock and returns a transaction that will
	// save the next generation with opts; see Tx.
	Begin(ctx context.Context, opts ...SaveOption) (Tx, error)
	// Load returns the current checkpoint, verified before any byte of it
	// is handed out; when it is damaged, the newest intact older generation
	// (see LoadOption). The caller must close it.
	Load(ctx context.Context, opts ...LoadOption) (*Checkpoint, error)
	// History returns every generation kept, newest first, each verified.
	History(ctx context.Context) ([]Generation, error)
	// Verify checks every generation and the session's files and returns
	// the problems found.
	Verify(ctx context.Context) ([]Problem, error)
	// BreakLock removes a stale lock, or a live one when force is set, and
	// returns what it removed; it returns nil, nil when there was no lock.
	BreakLock(ctx context.Context, force bool) (*Lock, error)
	// OpenLog creates or truncates the log of step name, which keeps at
	// most limit bytes of what is written to it (its head and its tail).
	OpenLog(name string, limit int64) (io.WriteCloser, error)
	// ReadLog opens the log of step name; ErrNoLog if there is none.
	ReadLog(name string) (io.ReadCloser, error)
	// Sweep removes a stale lock and orphaned temporary files last changed
	// before cutoff, and returns their paths; with dryRun it only returns
	// them.
	Sweep(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error)
	// Remove deletes the session. Unless force is set, it takes the
	// session's lock first, so that no save can complete unseen while it
	// removes, and a session with a live writer is refused with a
	// *LockedError.
	Remove(ctx context.Context, force bool, opts ...RemoveOption) error
}

// Tx is a transaction on a session: it holds the session's lock from Begin
// until Commit or Abort, so that what it reads stays current until it
// writes. A Tx is not safe for concurrent use.
type Tx interface {
	// Base returns the header of the current checkpoint as read under the
	// lock, nil if the session has none.
	Base() *checkpoint.Header
	// Next returns the header Commit will write.
	Next() *checkpoint.Header
	// Load returns the current checkpoint, verified; the lock keeps it
	// current until the transaction ends.
	Load(ctx context.Context) (*Checkpoint, error)
	// Commit streams payload (ignored with KeepPayload) into the next
	// generation, makes it current and releases the lock. On failure
	// nothing changes and the lock is released too.
	Commit(ctx context.Context, payload io.Reader) (*Saved, error)
	// Abort ends the transaction without saving and releases the lock. It
	// does nothing after Commit or a first Abort.
	Abort() error
}

// Errors returned by sessions. They are wrapped with the session id; test
// for them with errors.Is.
var (
	ErrNotFound     = errors.New("no such session")
	ErrNoCheckpoint = errors.New("no checkpoint saved yet")
	ErrConflict     = errors.New("generation conflict")
	ErrEmpty        = errors.New("refusing to save an empty payload")
	ErrSymlink      = errors.New("refusing to follow a symbolic link")
	ErrNoGeneration = errors.New("no such generation")
	ErrNoLog        = errors.New("no log")
)

// DefaultKeep is how many generations a save keeps, the current one
// included, unless Keep says otherwise.
const DefaultKeep = 3

// Status describes a session as Stat sees it.
type Status struct {
	ID string
	// Header is the current checkpoint's header; generation 0 means the
	// session was created but never saved. It is nil when the session has
	// no checkpoint file at all (its creation did not complete).
	Header *checkpoint.Header
	// Size is the payload size in bytes.
	Size int64
	// Modified is when the session last changed: the checkpoint's save time,
	// else the directory's modification time.
	Modified time.Time
	// Lock is the session's lock, nil when it is not locked.
	Lock *Lock
}

// Saved describes a checkpoint that Save committed.
type Saved struct {
	Header *checkpoint.Header
	Size   int64
}

// Checkpoint is a verified checkpoint being read.
type Checkpoint struct {
	Header *checkpoint.Header
	Size   int64
	// Skipped lists the newer generations that failed their integrity
	// check when Load fell back to this one; it is empty otherwise.
	Skipped []error
	io.ReadCloser
}

// Generation is one kept generation of a session.
type Generation struct {
	Generation uint64
	Current    bool
	// Path is where the generation is stored.
	Path string
	// Header and Size are those of an intact generation; Header may also be
	// set for a damaged one whose header is readable.
	Header *checkpoint.Header
	Size   int64
	// Err is why the generation is not intact, nil if it is.
	Err error
}

// Problem is something Verify found wrong with a session.
type Problem struct {
	// Kind is one of the Problem kinds below.
	Kind   string
	Path   string
	Detail string
}

// Problem kinds.
const (
	ProblemCorrupt     = "corrupt"     // a generation fails its integrity check
	ProblemStaleLock   = "stale-lock"  // a session.next whose writer is gone
	ProblemOrphan      = "orphan"      // a file no ckpt operation leaves behind
	ProblemPermissions = "permissions" // a file or directory others can access
)

// RemoveOption changes what Remove does.
type RemoveOption func(*RemoveConfig)

// RemoveConfig is what a removal's options ask for; see NewRemoveConfig.
type RemoveConfig struct {
	IfGeneration *uint64 // nil: no check
}

// RemoveIfGeneration removes the session only if its current generation is
// still n when the lock is held, and fails with ErrConflict otherwise: gc
// uses it so that a session saved after it looked is kept.
func RemoveIfGeneration(n uint64) RemoveOption {
	return func(c *RemoveConfig) { c.IfGeneration = &n }
}

// NewRemoveConfig applies opts.
func NewRemoveConfig(opts []RemoveOption) *RemoveConfig {
	c := &RemoveConfig{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// LoadOption changes what Load returns.
type LoadOption func(*LoadConfig)

// LoadConfig is what a load's options ask for; see NewLoadConfig.
type LoadConfig struct {
	Generation *uint64 // nil: the current generation
	Strict     bool
}

// AtGeneration loads generation n, current or kept, and fails with
// ErrNoGeneration if it is not kept.
func AtGeneration(n uint64) LoadOption { return func(c *LoadConfig) { c.Generation = &n } }

// Strict makes Load fail when the current checkpoint is damaged, instead of
// falling back to an older generation.
func Strict() LoadOption { return func(c *LoadConfig) { c.Strict = true } }

// NewLoadConfig applies opts.
func NewLoadConfig(opts []LoadOption) *LoadConfig {
	c := &LoadConfig{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Lock describes a session's lock: the session.next file of a writer that is
// active or crashed.
type Lock struct {
	// Owner is the writer recorded in the lock; nil if none could be read.
	Owner *checkpoint.Owner
	// Stale is true when the writer is provably gone.
	Stale bool
	// Reason says why the lock is, or is not, considered stale.
	Reason string
	// Since is when the lock file was last written.
	Since time.Time
}

// LockedError reports that a session is locked by another writer, or, with
// Lost, that this writer's own lock was broken while it saved, so that it
// saved nothing rather than overwrite what came after.
type LockedError struct {
	Session string
	Lock
	Lost bool
}

func (e *LockedError) Error() string {
	if e.Lost {
		return fmt.Sprintf("session %s: %s", e.Session, e.Reason)
	}
	state := "live"
	if e.Stale {
		state = "stale"
	}
	return fmt.Sprintf("session %s is locked by %s (%s lock: %s)", e.Session, e.Owner, state, e.Reason)
}

// SaveOption changes what Save writes.
type SaveOption func(*SaveConfig)

// SaveConfig is what a save's options ask for. Backends read it with
// NewSaveConfig; callers set it through the SaveOption functions.
type SaveConfig struct {
	IfGeneration *uint64 // nil: no check
	Title        *string // nil: keep the previous one
	App          *string // nil: keep the previous one
	SetFlags     []string
	ClearFlags   []string
	Steps        []checkpoint.Step
	Command      string
	AllowEmpty   bool
	KeepPayload  bool
	Keep         int  // generations to keep; 0 means DefaultKeep
	Init         bool // write generation 0 of a new session
	Now          func() time.Time
}

// IfGeneration makes the save a compare-and-swap: it fails with ErrConflict
// unless the current generation is n when the lock is held.
func IfGeneration(n uint64) SaveOption {
	return func(c *SaveConfig) { c.IfGeneration = &n }
}

// WithTitle sets the title; without it the previous title is kept.
func WithTitle(t string) SaveOption { return func(c *SaveConfig) { c.Title = &t } }

// WithApp sets the application id; without it the previous one is kept.
func WithApp(app string) SaveOption { return func(c *SaveConfig) { c.App = &app } }

// WithFlags sets and clears flags; the others are kept.
func WithFlags(set, clear []string) SaveOption {
	return func(c *SaveConfig) {
		c.SetFlags = append(c.SetFlags, set...)
		c.ClearFlags = append(c.ClearFlags, clear...)
	}
}

// WithCommand records the command that saves, shown to anyone who finds the
// session locked.
func WithCommand(cmd string) SaveOption { return func(c *SaveConfig) { c.Command = cmd } }

// AllowEmpty lets Save commit an empty payload. Without it an empty payload
// fails with ErrEmpty, since it usually means the producer failed.
func AllowEmpty() SaveOption { return func(c *SaveConfig) { c.AllowEmpty = true } }

// Keep sets how many generations to keep, the new one included; 1 keeps no
// history. Older ones are removed by this save. Zero means DefaultKeep.
func Keep(k int) SaveOption { return func(c *SaveConfig) { c.Keep = k } }

// WithStep records step s, replacing an earlier record of the same name.
func WithStep(s checkpoint.Step) SaveOption {
	return func(c *SaveConfig) { c.Steps = append(c.Steps, s) }
}

// KeepPayload makes a save that changes metadata only: the new generation
// has the current checkpoint's payload, verified, and Save's payload
// argument is ignored.
func KeepPayload() SaveOption { return func(c *SaveConfig) { c.KeepPayload = true } }

// NewSaveConfig applies opts.
func NewSaveConfig(opts []SaveOption) *SaveConfig {
	c := &SaveConfig{Now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NextHeader returns the header of the generation after prev (nil for none),
// with owner, as the options ask, validated.
func (c *SaveConfig) NextHeader(prev *checkpoint.Header, owner *checkpoint.Owner) (*checkpoint.Header, error) {
	now := c.Now().UTC()
	h := &checkpoint.Header{Generation: 1, Saved: now, Created: now, Owner: owner}
	if prev != nil {
		h.Generation = prev.Generation + 1
		h.Created = prev.Created
		h.Title, h.App, h.Flags, h.Steps = prev.Title, prev.App, prev.Flags, prev.Steps
	}
	for _, s := range c.Steps {
		h.Steps = h.WithStep(s)
	}
	if c.Init {
		h.Generation = 0
	}
	if c.KeepPayload && !c.Init && prev != nil && (prev.Generation == 0 || prev.NoPayload) {
		h.NoPayload = true
	}
	if c.Title != nil {
		h.Title = *c.Title
	}
	if c.App != nil {
		h.App = *c.App
	}
	h.Flags = h.SetFlags(c.SetFlags, c.ClearFlags)
	if err := h.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", checkpoint.ErrInvalid, err)
	}
	return h, nil
}

// ctxReader stops a streaming copy when its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
