package repository

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/gosimple/slug"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// Limits on ids.
const (
	MaxIDLen     = checkpoint.MaxNameLen
	MaxPrefixLen = 40
	// DefaultPrefix names sessions whose prefix slugs to nothing.
	DefaultPrefix = "session"
)

// ErrInvalidID reports a session id outside the id rules.
var ErrInvalidID = errors.New("invalid session id")

// ValidateID returns an error wrapping ErrInvalidID unless id is a valid
// session id.
func ValidateID(id string) error {
	var why string
	switch {
	case id == "":
		why = "it is empty"
	case len(id) > MaxIDLen:
		why = fmt.Sprintf("it is %d characters long, the limit is %d", len(id), MaxIDLen)
	case id[0] == '.':
		why = "it starts with '.'"
	case !checkpoint.ValidName(id):
		why = "ids are lowercase letters, digits, '-', '_' and '.'"
	default:
		return nil
	}
	return fmt.Errorf("%w %q: %s", ErrInvalidID, truncate(id, 40), why)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Slug turns a free-form prefix into the first part of a session id: a
// lowercase slug of at most MaxPrefixLen characters, DefaultPrefix if nothing
// is left.
func Slug(prefix string) string {
	s := slug.Make(prefix)
	if len(s) > MaxPrefixLen {
		s = strings.TrimRight(s[:MaxPrefixLen], "-_")
	}
	if s == "" {
		return DefaultPrefix
	}
	return s
}

// Repository is a set of sessions: a local directory, or a prefix of an S3
// bucket. It is safe for concurrent use.
type Repository struct {
	b backend
}

// Open returns the repository in the local directory root, which must be an
// absolute path. The directory need not exist yet: Create makes it.
func Open(root string) (*Repository, error) {
	if !filepath.IsAbs(root) {
		return nil, fmt.Errorf("repository path %q is not absolute", root)
	}
	r := &Repository{b: localBackend{dir: filepath.Clean(root)}}
	if _, err := r.b.exists(context.Background()); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenS3 returns the repository at url, s3://BUCKET/PREFIX. It refuses a
// server that does not enforce conditional writes (see
// s3store.Store.CheckConditionalWrites), on which locks cannot hold.
func OpenS3(ctx context.Context, url string, o s3store.Options) (*Repository, error) {
	st, err := s3store.Open(ctx, url, o)
	if err != nil {
		return nil, err
	}
	if err := st.CheckConditionalWrites(ctx); err != nil {
		return nil, err
	}
	return &Repository{b: s3Backend{st: st}}, nil
}

// Root returns where the repository is: a directory or an s3:// URL.
func (r *Repository) Root() string { return r.b.root() }

// CreateOptions describe a new session.
type CreateOptions struct {
	Prefix string
	Title  string
	App    string
	Flags  []string
	// Key is what the session runs for, such as a commit id: Filter.Key
	// finds it.
	Key string
}

// Create makes a new session named Slug(Prefix) followed by a random suffix,
// claimed atomically (a mkdir, or a conditional create on S3), and writes its
// generation 0 (metadata, no payload).
func (r *Repository) Create(ctx context.Context, o CreateOptions) (*storage.Session, error) {
	meta := checkpoint.Header{Title: o.Title, App: o.App, Key: o.Key}
	meta.Flags = meta.SetFlags(o.Flags, nil)
	if err := meta.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", checkpoint.ErrInvalid, err)
	}
	prefix := Slug(o.Prefix)
	for range 8 {
		s, err := r.b.claim(ctx, prefix+"-"+randomSuffix(),
			storage.WithTitle(o.Title), storage.WithApp(o.App), storage.WithKey(o.Key),
			storage.WithFlags(o.Flags, nil), storage.WithCommand("ckpt create"))
		if errors.Is(err, errClaimed) {
			continue
		}
		return s, err
	}
	return nil, fmt.Errorf("create session: no free id after 8 tries")
}

const (
	suffixAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
	suffixLen      = 12
)

var suffixEncoding = base32.NewEncoding(suffixAlphabet).WithPadding(base32.NoPadding)

// randomSuffix returns 60 random bits as 12 lowercase base32 characters.
func randomSuffix() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return suffixEncoding.EncodeToString(b[:])[:suffixLen]
}

// Open returns the session with the given id.
func (r *Repository) Open(ctx context.Context, id string) (*storage.Session, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	return r.b.open(ctx, id)
}

// Entry is one session in a listing. Err is set, and Status nil, when the
// session is damaged.
type Entry struct {
	ID     string
	Status *storage.Status
	Err    error
}

// Filter selects sessions in a listing. Zero values select everything.
type Filter struct {
	// Prefix keeps ids made by Create with this prefix: Slug(Prefix), '-'
	// and a 12-character random suffix.
	Prefix string
	// Flags keeps sessions that have every one of these flags set.
	Flags []string
	// NoFlags keeps sessions that have none of these flags set.
	NoFlags []string
	// Key, if set, keeps the sessions created with exactly this key.
	Key string
	// WithSteps reads each listed session's steps too (Status.Steps): one
	// more listing per session.
	WithSteps bool
}

// keepID keeps ids that Create would make from f.Prefix: its slug, '-' and
// a random suffix, so that --prefix nightly does not also select the
// sessions of --prefix nightly-run.
func (f Filter) keepID(id string) bool {
	if f.Prefix == "" {
		return true
	}
	suffix, ok := strings.CutPrefix(id, Slug(f.Prefix)+"-")
	return ok && len(suffix) == suffixLen && strings.Trim(suffix, suffixAlphabet) == ""
}

func (f Filter) keep(st *storage.Status) bool {
	if f.Key != "" && (st.Header == nil || st.Header.Key != f.Key) {
		return false
	}
	for _, fl := range f.Flags {
		if st.Header == nil || !st.Header.HasFlag(fl) {
			return false
		}
	}
	for _, fl := range f.NoFlags {
		if st.Header != nil && st.Header.HasFlag(fl) {
			return false
		}
	}
	return true
}

// List returns the sessions that match f, youngest first: by last save, else
// by creation. Sessions removed while List runs are left out; damaged ones are
// listed with their error (a flag filter cannot be applied to them, so they
// are listed whatever it says).
func (r *Repository) List(ctx context.Context, f Filter) ([]Entry, error) {
	cands, err := r.b.saved(ctx, false)
	if err != nil {
		return nil, err
	}
	cands = slices.DeleteFunc(cands, func(c candidate) bool { return !f.keepID(c.id) })
	out, err := r.statAll(ctx, cands, f)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b Entry) int {
		var ta, tb int64
		if a.Status != nil {
			ta = a.Status.Modified.UnixNano()
		}
		if b.Status != nil {
			tb = b.Status.Modified.UnixNano()
		}
		return cmp.Or(cmp.Compare(tb, ta), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// statAll stats the sessions cands a few at a time, and returns those that
// match f, the damaged ones included, in the order of ids. Sessions removed
// meanwhile are left out.
func (r *Repository) statAll(ctx context.Context, cands []candidate, f Filter) ([]Entry, error) {
	entries := make([]Entry, len(cands))
	// A remote backend needs requests for each session, a local one loses
	// nothing by it.
	var (
		wg  sync.WaitGroup
		sem = make(chan struct{}, listConcurrency)
	)
	for i, c := range cands {
		if err := ctx.Err(); err != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			e := Entry{ID: c.id}
			if e.Err = ValidateID(c.id); e.Err == nil {
				var opts []storage.StatOption
				if c.noLock {
					opts = append(opts, storage.NoLockListed())
				}
				if f.WithSteps {
					opts = append(opts, storage.WithSteps())
				}
				e.Status, e.Err = r.stat(ctx, c.id, opts...)
			}
			entries[i] = e
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		switch {
		case errors.Is(e.Err, storage.ErrNotFound):
			// removed while we listed
		case e.Err == nil && !f.keep(e.Status):
		default:
			out = append(out, e)
		}
	}
	return out, nil
}

// listConcurrency bounds how many sessions List stats at once.
const listConcurrency = 16

func (r *Repository) stat(ctx context.Context, id string, opts ...storage.StatOption) (*storage.Status, error) {
	s, err := r.b.open(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.Stat(ctx, opts...)
}

// Remove deletes the session with the given id. A session with a live writer
// is refused with a *storage.LockedError unless force is set.
func (r *Repository) Remove(ctx context.Context, id string, force bool, opts ...storage.RemoveOption) error {
	s, err := r.Open(ctx, id)
	if err != nil {
		return err
	}
	return s.Remove(ctx, force, opts...)
}
