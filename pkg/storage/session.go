package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Session is one checkpointed session, stored by a Backend. Every
// behaviour of a session — the save protocol, fallback to an intact
// generation, history and its pruning, verify, sweep and remove — is written
// here once, over the backend's primitives, so that it is the same on every
// backend. A Session holds no open objects and is safe for concurrent use;
// any number of processes may use the same session at once. Writers of one
// process to the same session (through one Session, or several on the same
// location) wait for each other instead of failing; writers of other
// processes get a *LockedError. Steps have claims of their own (StartStep):
// goroutines may run different steps at once.
type Session struct {
	b   Backend
	now func() time.Time

	legacy struct { // see legacySteps
		sync.Mutex
		read  bool
		steps []checkpoint.Step
	}
}

// New returns the session stored by b. It makes no request.
func New(b Backend) *Session { return &Session{b: b, now: time.Now} }

// Init writes generation 0 of a new session: a manifest with metadata and
// no payload, so that a session has its title and flags before its first
// save. It fails with ErrConflict if the session already has a manifest.
func Init(ctx context.Context, b Backend, opts ...SaveOption) (*Session, error) {
	s := New(b)
	c := NewSaveConfig(opts)
	c.Init = true
	tx, err := s.begin(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Commit(ctx, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// ID returns the session's id.
func (s *Session) ID() string { return s.b.ID() }

// Location names where the session is stored: a path or an s3:// URL.
func (s *Session) Location() string { return s.b.Location() }

// Backend returns the backend that stores the session.
func (s *Session) Backend() Backend { return s.b }

func (s *Session) errorf(format string, args ...any) error {
	return fmt.Errorf("session %s: "+format, append([]any{s.b.ID()}, args...)...)
}

// Head returns the header of the newest generation whose manifest is
// intact: the current one or, when that is damaged, the newest kept one.
// It is nil when the session was created but never initialized.
func (s *Session) Head(ctx context.Context) (*checkpoint.Header, error) {
	m, err := s.readManifest(ctx, CheckpointFile)
	var ce *checkpoint.CorruptError
	switch {
	case err == nil:
		return m.h, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, s.b.Check(ctx)
	case !errors.As(err, &ce):
		return nil, err
	}
	gens, lerr := s.listHistory(ctx)
	if lerr != nil {
		return nil, errors.Join(err, lerr)
	}
	for _, g := range gens {
		if h, herr := s.readManifest(ctx, historyName(g)); herr == nil {
			return h.h, nil
		}
	}
	return nil, err
}

// StatOption changes what Stat reads.
type StatOption func(*statConfig)

type statConfig struct{ noLock, steps bool }

// WithSteps makes Stat read the session's steps too (Status.Steps).
func WithSteps() StatOption { return func(c *statConfig) { c.steps = true } }

// NoLockListed tells Stat that a listing made just now found no lock in the
// session, so that it does not look for one: a listing of many sessions
// then costs one read each.
func NoLockListed() StatOption { return func(c *statConfig) { c.noLock = true } }

// Stat returns the session's metadata and lock state without reading the
// payload.
func (s *Session) Stat(ctx context.Context, opts ...StatOption) (*Status, error) {
	var c statConfig
	for _, o := range opts {
		o(&c)
	}
	st := &Status{ID: s.b.ID()}
	m, err := s.readManifest(ctx, CheckpointFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := s.b.Check(ctx); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		st.Header, st.Size, st.Modified = m.h, m.size(), m.h.Saved
	}
	if !c.noLock {
		if st.Lock, err = s.b.InspectLock(ctx, NextFile); err != nil {
			return nil, s.errorf("inspect lock: %w", err)
		}
	}
	if st.Header == nil && st.Lock != nil {
		st.Modified = st.Lock.Since
	}
	if c.steps {
		if st.Steps, err = s.steps(ctx, st.Header); err != nil {
			return nil, err
		}
	}
	return st, nil
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
	// Steps are the session's steps, as Session.Steps returns them, when
	// Stat was asked for them (WithSteps).
	Steps []checkpoint.Step
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
	// Spooled is set when the payload was downloaded into the file given
	// to SpoolTo.
	Spooled bool
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
	ProblemUnreadable  = "unreadable"  // a generation that cannot be read (an I/O error, a planted link)
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
	Spool      *os.File
	// Progress, when set, is told how far each pass over the payload has
	// come (see ReportProgress).
	Progress func(Progress)
}

// SpoolTo gives Load a file of the caller's to download the payload into,
// on a backend that must download an object to read it (S3). When it does,
// Checkpoint.Spooled is set: the file then holds exactly the payload,
// verified, and the caller need not copy it (ckpt load -o downloads
// straight into the temporary file of its target); when it is not set, the
// file is empty, positioned at its start. A failed Load may leave anything
// in it.
func SpoolTo(f *os.File) LoadOption { return func(c *LoadConfig) { c.Spool = f } }

// AtGeneration loads generation n, current or kept, and fails with
// ErrNoGeneration if it is not kept.
func AtGeneration(n uint64) LoadOption { return func(c *LoadConfig) { c.Generation = &n } }

// Strict makes Load fail when the current checkpoint is damaged, instead of
// falling back to an older generation.
func Strict() LoadOption { return func(c *LoadConfig) { c.Strict = true } }

// Progress is how far one pass over a payload has come.
type Progress struct {
	// Pass is PassDownload or PassVerify.
	Pass string
	// Done of Total bytes; Total is -1 when unknown.
	Done, Total int64
}

// The passes a load makes over a payload before it hands out a byte: a
// backend that downloads objects to read them (S3) downloads it, then it
// is verified.
const (
	PassDownload = "download"
	PassVerify   = "verify"
)

// ReportProgress has Load call fn as it downloads and verifies the payload:
// a load of a large payload spends most of its time there, before the
// first byte is handed out. A fallback to an older generation starts again
// from 0. fn may be called from another goroutine than Load's, never from
// two at once, and must not block.
func ReportProgress(fn func(Progress)) LoadOption {
	return func(c *LoadConfig) { c.Progress = fn }
}

type progressKey struct{}

// DownloadProgress returns the function a backend that downloads objects
// (see Spooler) tells how much of an object it downloaded, done of total
// bytes (-1 when unknown): what ReportProgress asked for, else nil.
func DownloadProgress(ctx context.Context) func(done, total int64) {
	fn, _ := ctx.Value(progressKey{}).(func(Progress))
	if fn == nil {
		return nil
	}
	return func(done, total int64) { fn(Progress{Pass: PassDownload, Done: done, Total: total}) }
}

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
//
// With Step set, the lock is that step's claim: another process runs it.
type LockedError struct {
	Session string
	Step    string
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
	if e.Step != "" {
		return fmt.Sprintf("session %s: step %s is being run by %s (%s claim: %s)", e.Session, e.Step, e.Owner, state, e.Reason)
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
	Key          *string // nil: keep the previous one
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

// WithKey sets what the session runs for (a commit, a hash of inputs);
// without it the previous key is kept.
func WithKey(k string) SaveOption { return func(c *SaveConfig) { c.Key = &k } }

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
		h.Title, h.App, h.Flags, h.Steps, h.Key = prev.Title, prev.App, prev.Flags, prev.Steps, prev.Key
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
	if c.Key != nil {
		h.Key = *c.Key
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
