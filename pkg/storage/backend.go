package storage

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Object names inside a session.
const (
	// CheckpointFile is the current manifest.
	CheckpointFile = "session"
	// NextFile is the writer's lock; a leftover one is a writer that is
	// active or crashed.
	NextFile = "session.next"
	// PayloadPrefix starts the name of a payload object.
	PayloadPrefix = "payload-"
	// LogDir holds the logs of steps recorded before StepDir existed.
	LogDir = "logs"
	// StepDir holds the run records of steps: StepDir/<step>/ has the
	// step's claim and each kept attempt's start record, end record and
	// log (see Session.StartStep).
	StepDir = "steps"
)

// historyName is the name of kept generation n: session.<n>.
func historyName(n uint64) string {
	return CheckpointFile + "." + strconv.FormatUint(n, 10)
}

// parseHistoryName returns the generation a history name stands for.
func parseHistoryName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, CheckpointFile+".")
	if !ok || s == "" || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// Backend is where one session's objects live: a local directory (Dir) or
// an S3 prefix (package s3store). It offers only the primitives in which a
// directory and a bucket really differ; Session builds the save protocol,
// fallback, history, verify and sweep from them, once for every backend.
//
// Objects are named by the protocol: "session" (the current manifest),
// "session.next" (the writer's lock), "session.<n>" (kept manifests),
// "payload-<random>" (payloads), and under "steps/" and "logs/" the records,
// claims and logs of steps: names with "/" are objects in a subdirectory,
// which a backend creates as needed. A backend stores names as given,
// refuses nothing but what it cannot store, and never follows a symbolic
// link planted where an object is expected.
//
// What every backend must guarantee:
//
//   - Read after write: once a write primitive returns nil, every later
//     read, list or open, from any process, sees the new object.
//   - Whole or nothing: a reader never sees part of an object. Create, Put
//     and Commit either store all of their bytes under the name or leave the
//     name as it was (absent, or its old content).
//   - Commit is the only way to change "session", and it is conditional:
//     it applies only if this writer still holds the lock and "session" is
//     still the version the writer read (base); otherwise it changes nothing
//     and fails. When it returns nil the new manifest is durable and
//     current; when it cannot tell whether the server applied it (a lost
//     response), it finds out before it answers.
//   - Durability: objects written by Create and Put before a Commit survive
//     a crash once that Commit has returned nil.
//   - A lock is exclusive, and its staleness is provable: a lock reported
//     Stale belongs to a writer that can no longer commit. Locks are named:
//     "session.next" is the writer's, and each step has a claim.
//
// Errors for a missing object wrap fs.ErrNotExist; a missing session is
// ErrNotFound; a planted symbolic link is ErrSymlink.
type Backend interface {
	// ID returns the session's id.
	ID() string
	// Location names the session in messages: a path or an s3:// URL.
	Location() string
	// Check fails with ErrNotFound if the session does not exist.
	Check(ctx context.Context) error

	// Lock takes the lock called name (NextFile, or a step's claim) for
	// owner. If another process holds it, it fails with a *LockedError
	// that says whether that lock is stale. The lock is held until
	// Release, or until it is broken.
	Lock(ctx context.Context, name string, owner *checkpoint.Owner) (Held, error)
	// InspectLock returns the lock called name as it is now, nil if there
	// is none.
	InspectLock(ctx context.Context, name string) (*Lock, error)
	// BreakLock removes the lock called name if it is stale, or live when
	// force is set, and returns what it removed; nil, nil when there was
	// none. A live lock without force is a *LockedError.
	BreakLock(ctx context.Context, name string, force bool) (*Lock, error)

	// ReadHead returns the first n bytes of object name (fewer if it is
	// shorter) and what is known of the object.
	ReadHead(ctx context.Context, name string, n int64) ([]byte, ObjectInfo, error)
	// Open returns object name for reading at any offset, as a snapshot
	// that does not change while it is open.
	Open(ctx context.Context, name string) (Object, error)
	// Create stores the bytes of r as the new object name, whole or
	// nothing, and fails wrapping fs.ErrExist if name exists. It returns
	// only once the whole object is stored; it returns the object's size.
	Create(ctx context.Context, name string, r io.Reader) (int64, error)
	// Put stores a small object, replacing any object of that name.
	Put(ctx context.Context, name string, data []byte) error
	// Copy makes dst an object with the content of src (a hard link
	// locally, a server-side copy on S3). It is used only to keep a
	// format-1 checkpoint, whose payload is inside it, as history.
	Copy(ctx context.Context, src, dst string) error
	// Commit makes data the current manifest ("session"), if held is still
	// this writer's lock and "session" is still at version base ("" when
	// there was none); see the guarantees above. A lost lock fails with a
	// Lost *LockedError, a changed base with ErrConflict.
	Commit(ctx context.Context, held Held, base string, data []byte) error
	// List returns the session's objects outside subdirectories.
	List(ctx context.Context) ([]ObjectInfo, error)
	// ListUnder returns the objects whose names start with dir + "/", at
	// any depth, locks included.
	ListUnder(ctx context.Context, dir string) ([]ObjectInfo, error)
	// Delete removes objects; one that is already gone is no error.
	Delete(ctx context.Context, names ...string) error
	// Destroy removes the whole session, logs and lock included, so that
	// no listing ever sees it half removed.
	Destroy(ctx context.Context) error

	// CreateLog creates the log object name, replacing an older one (never
	// writing through it), and returns a sink for its bytes, which a
	// backend may keep only once the sink is closed.
	CreateLog(ctx context.Context, name string) (io.WriteCloser, error)
	// OpenLog opens the log object name; wrapping fs.ErrNotExist if none.
	OpenLog(ctx context.Context, name string) (io.ReadCloser, error)

	// SweepTemp removes what interrupted writers of this backend leave
	// besides objects (temporary files, unfinished uploads), last changed
	// before cutoff and provably abandoned, and returns where they were;
	// with dryRun it only returns them.
	SweepTemp(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error)
}

// Held is a writer lock taken by Backend.Lock.
type Held interface {
	// Check fails with a Lost *LockedError if the lock is no longer this
	// writer's: it was broken.
	Check(ctx context.Context) error
	// Release lets go of the lock. It does nothing after a first call.
	Release(ctx context.Context) error
}

// ObjectInfo describes an object.
type ObjectInfo struct {
	Name     string
	Size     int64
	Modified time.Time
	// Version changes whenever the object's content may have changed (an
	// ETag on S3; device, inode, size and time locally). Commit takes the
	// Version of "session" as its base.
	Version string
}

// Object is an object open for reading.
type Object interface {
	io.ReaderAt
	io.Closer
	Size() int64
	// Name says where the object is, for messages.
	Name() string
}

// Spooler is implemented by backends that download an object to read it:
// OpenInto downloads object name into f, which the caller owns, from its
// start (truncating it), and returns it for reading; closing the Object
// leaves f open. Load uses it for SpoolTo.
type Spooler interface {
	OpenInto(ctx context.Context, name string, f *os.File) (Object, error)
}

// Auditor is implemented by backends that can check more than the protocol
// sees, such as file permissions; Verify adds what it finds.
type Auditor interface {
	Audit(ctx context.Context) ([]Problem, error)
}
