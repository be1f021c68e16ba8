package repository

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// backend is where a repository keeps its sessions: a local directory or an
// S3 prefix. Everything else a repository does is the same on both.
type backend interface {
	root() string
	// exists reports whether the repository is there at all; it fails if
	// its location names something else.
	exists(ctx context.Context) (bool, error)
	// claim creates session id and writes its generation 0 with opts; it
	// fails with errClaimed if the id is taken.
	claim(ctx context.Context, id string, opts ...storage.SaveOption) (*storage.Session, error)
	open(ctx context.Context, id string) (*storage.Session, error)
	// saved returns the entries that may be sessions, with what one
	// listing tells of them: with times, when each current manifest last
	// changed (zero if unknown), the order in which Last reads them.
	saved(ctx context.Context, times bool) ([]candidate, error)
	// sweep removes what interrupted removals left, last changed before
	// cutoff, and returns where it was.
	sweep(cutoff time.Time, dryRun bool) (swept []string, errs []error)
	// born returns when session id was last seen being made, for a session
	// with neither a manifest nor a lock (zero when nothing tells).
	born(id string) time.Time
}

var errClaimed = errors.New("session id taken")

// candidate is a session as a listing sees it, before its manifest is read.
type candidate struct {
	id       string
	modified time.Time
	// noLock is set when the listing showed that the session has no lock.
	noLock bool
}

// localBackend keeps sessions as directories of dir.
type localBackend struct{ dir string }

func (b localBackend) root() string { return b.dir }

func (b localBackend) exists(context.Context) (bool, error) {
	fi, err := os.Stat(b.dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("repository %s: %w", b.dir, err)
	case !fi.IsDir():
		return false, fmt.Errorf("repository %s is not a directory", b.dir)
	}
	return true, nil
}

func (b localBackend) claim(ctx context.Context, id string, opts ...storage.SaveOption) (*storage.Session, error) {
	if err := os.MkdirAll(b.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create repository: %w", err)
	}
	path := filepath.Join(b.dir, id)
	err := os.Mkdir(path, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil, errClaimed
	}
	if err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	d, err := storage.OpenDir(path)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(path))
	}
	s, err := storage.Init(ctx, d, opts...)
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(path))
	}
	return s, nil
}

func (b localBackend) open(_ context.Context, id string) (*storage.Session, error) {
	return storage.Open(filepath.Join(b.dir, id))
}

func (b localBackend) names(context.Context) ([]string, error) {
	des, err := os.ReadDir(b.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list repository %s: %w", b.dir, err)
	}
	var out []string
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), ".") {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

func (b localBackend) saved(ctx context.Context, times bool) ([]candidate, error) {
	names, err := b.names(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]candidate, len(names))
	for i, id := range names {
		out[i].id = id
		if !times {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(b.dir, id, storage.CheckpointFile)); err == nil {
			out[i].modified = fi.ModTime()
		}
	}
	return out, nil
}

// born is when the session's directory last changed: a creator makes the
// directory, then its lock and manifest in it.
func (b localBackend) born(id string) time.Time {
	if fi, err := os.Lstat(filepath.Join(b.dir, id)); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

// sweep removes the hidden trash directories of interrupted removals.
func (b localBackend) sweep(cutoff time.Time, dryRun bool) ([]string, []error) {
	des, err := os.ReadDir(b.dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, []error{fmt.Errorf("gc %s: %w", b.dir, err)}
	}
	var (
		swept []string
		errs  []error
	)
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), storage.TrashPrefix) {
			continue
		}
		fi, err := de.Info()
		if err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		path := filepath.Join(b.dir, de.Name())
		if !dryRun {
			if err := os.RemoveAll(path); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		swept = append(swept, path)
	}
	return swept, errs
}

// s3Backend keeps sessions under a prefix of an S3 bucket.
type s3Backend struct{ st *s3store.Store }

func (b s3Backend) root() string { return b.st.Root() }

// exists is true: a prefix exists as soon as its bucket does, which opening
// the store checked.
func (b s3Backend) exists(context.Context) (bool, error) { return true, nil }

func (b s3Backend) claim(ctx context.Context, id string, opts ...storage.SaveOption) (*storage.Session, error) {
	sb, err := b.st.Backend(id)
	if err != nil {
		return nil, err
	}
	s, err := storage.Init(ctx, sb, opts...)
	var le *storage.LockedError
	if errors.Is(err, storage.ErrConflict) || errors.As(err, &le) && !le.Lost {
		// Another creator holds, or has committed, the id.
		return nil, errClaimed
	}
	return s, err
}

func (b s3Backend) open(ctx context.Context, id string) (*storage.Session, error) {
	sb, err := b.st.Backend(id)
	if err != nil {
		return nil, err
	}
	return storage.New(sb), nil
}

// saved lists every key under the prefix once, whatever times says: it
// tells both when each manifest was written and which sessions are locked.
func (b s3Backend) saved(ctx context.Context, _ bool) ([]candidate, error) {
	m, err := b.st.ListSaved(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]candidate, 0, len(m))
	for id, l := range m {
		out = append(out, candidate{id: id, modified: l.Saved, noLock: !l.Locked})
	}
	return out, nil
}

// born tells nothing: an S3 creator takes the session's lease before anything
// else, so a session has a lock or a manifest from its first moment.
func (b s3Backend) born(string) time.Time { return time.Time{} }

// sweep has nothing to do: an S3 session is removed object by object under
// its lease, and leaves no trash behind.
func (b s3Backend) sweep(time.Time, bool) ([]string, []error) { return nil, nil }
