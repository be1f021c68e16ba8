package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Session is a session stored under PREFIX/ID/ in a bucket. It implements
// storage.Session; it holds no resources and is safe for concurrent use, and
// any number of processes on any number of machines may use it at once.
type Session struct {
	st  *Store
	id  string
	dir string // PREFIX/ID/
}

var _ storage.Session = (*Session)(nil)

// Object names inside a session, as in a session directory.
const (
	CheckpointObject = storage.CheckpointFile // the current checkpoint
	LeaseObject      = storage.NextFile       // the lock: a writer's lease
	LogPrefix        = storage.LogDir + "/"
)

// ID implements storage.Session.
func (s *Session) ID() string { return s.id }

// URL returns the session's url, s3://BUCKET/PREFIX/ID.
func (s *Session) URL() string { return s.st.url(strings.TrimSuffix(s.dir, "/")) }

func (s *Session) key(name string) string { return s.dir + name }

func (s *Session) errorf(format string, args ...any) error {
	return fmt.Errorf("session %s: "+format, append([]any{s.id}, args...)...)
}

// reqErr wraps the failure of a request on the session's object name.
func (s *Session) reqErr(op, name string, err error) error {
	return s.errorf("%w", s.st.requestError(op, s.key(name), err))
}

// historyName is the object name of kept generation n: session.<n>.
func historyName(n uint64) string {
	return CheckpointObject + "." + strconv.FormatUint(n, 10)
}

func parseHistoryName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, CheckpointObject+".")
	if !ok || s == "" || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// check fails with storage.ErrNotFound unless some object of the session
// exists.
func (s *Session) check(ctx context.Context) error {
	_, err := s.st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(CheckpointObject))})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return s.reqErr("head", CheckpointObject, err)
	}
	out, err := s.st.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.st.bucket, Prefix: aws.String(s.dir), MaxKeys: aws.Int32(1)})
	if err != nil {
		return s.errorf("%w", s.st.requestError("list", s.dir, err))
	}
	if len(out.Contents) == 0 {
		return s.errorf("%w", storage.ErrNotFound)
	}
	return nil
}

// headerRange is how much of a checkpoint a header read asks for at first;
// a larger header costs a second request.
const headerRange = 64 << 10

// objHeader is a checkpoint's header as read from the start of its object.
type objHeader struct {
	h     *checkpoint.Header
	size  int64 // payload size
	total int64 // object size
	etag  string
}

// readHeader reads the header of checkpoint object name with a ranged GET.
// It returns an error wrapping fs.ErrNotExist if there is no such object.
func (s *Session) readHeader(ctx context.Context, name string) (*objHeader, error) {
	want := int64(headerRange)
	for {
		data, total, etag, err := s.getRange(ctx, name, want)
		if err != nil {
			return nil, err
		}
		h, off, err := checkpoint.ReadHeader(bytes.NewReader(data))
		var ce *checkpoint.CorruptError
		if errors.As(err, &ce) && int64(len(data)) < total && want < checkpoint.MaxHeaderSize+64 {
			// Maybe only cut short by the range: ask for all a header can be.
			want = checkpoint.MaxHeaderSize + 64
			continue
		}
		if err != nil {
			return nil, s.errorf("%s: %w", s.st.url(s.key(name)), err)
		}
		return &objHeader{h: h, size: max(total-off-checkpoint.TrailerSize, 0), total: total, etag: etag}, nil
	}
}

// getRange returns the first n bytes of object name, its total size and its
// ETag.
func (s *Session) getRange(ctx context.Context, name string, n int64) ([]byte, int64, string, error) {
	out, err := s.st.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &s.st.bucket,
		Key:    aws.String(s.key(name)),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
	})
	switch {
	case err != nil && apiCode(err) == "InvalidRange":
		return nil, 0, "", nil // an empty object
	case isNotFound(err):
		return nil, 0, "", s.errorf("%s: %w", s.st.url(s.key(name)), fs.ErrNotExist)
	case err != nil:
		return nil, 0, "", s.reqErr("get", name, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return nil, 0, "", s.reqErr("get", name, err)
	}
	total := int64(len(data))
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if t, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				total = t
			}
		}
	}
	return data, total, aws.ToString(out.ETag), nil
}

// current returns the current checkpoint's header, nil if there is none.
func (s *Session) current(ctx context.Context) (*objHeader, error) {
	oh, err := s.readHeader(ctx, CheckpointObject)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return oh, err
}

// Stat implements storage.Session: two requests, the checkpoint's header
// and the lease, sent at once.
func (s *Session) Stat(ctx context.Context) (*storage.Status, error) {
	type leaseResult struct {
		ls  *leaseState
		err error
	}
	lc := make(chan leaseResult, 1)
	go func() {
		ls, err := s.readLease(ctx)
		lc <- leaseResult{ls, err}
	}()
	cur, err := s.current(ctx)
	lr := <-lc
	if err != nil {
		return nil, err
	}
	if lr.err != nil {
		return nil, lr.err
	}
	st := &storage.Status{ID: s.id}
	if cur != nil {
		st.Header, st.Size, st.Modified = cur.h, cur.size, cur.h.Saved
	} else {
		if lr.ls == nil {
			if err := s.check(ctx); err != nil {
				return nil, err
			}
		} else {
			st.Modified = lr.ls.modified
		}
	}
	if lr.ls != nil {
		st.Lock = s.judge(lr.ls, time.Now())
	}
	return st, nil
}

// Load implements storage.Session. The checkpoint is downloaded and
// verified in full before the first byte is handed out: in memory up to
// Options.PartSize, else in an unlinked temporary file. Without options it
// returns the current checkpoint or, when that fails its integrity check,
// the newest intact older generation, naming the damaged ones in Skipped.
func (s *Session) Load(ctx context.Context, opts ...storage.LoadOption) (*storage.Checkpoint, error) {
	c := storage.NewLoadConfig(opts)
	if c.Generation != nil {
		return s.loadGeneration(ctx, *c.Generation)
	}
	cp, err := s.loadCurrent(ctx)
	var ce *checkpoint.CorruptError
	if err == nil || c.Strict || !errors.As(err, &ce) {
		return cp, err
	}
	gens, herr := s.historyGenerations(ctx)
	if herr != nil {
		return nil, errors.Join(err, herr)
	}
	skipped := []error{err}
	for _, g := range gens {
		cp, gerr := s.load(ctx, historyName(g), "")
		if gerr == nil {
			cp.Skipped = skipped
			return cp, nil
		}
		if errors.Is(gerr, fs.ErrNotExist) {
			continue // pruned while we looked
		}
		skipped = append(skipped, gerr)
	}
	if len(skipped) == 1 {
		return nil, err
	}
	return nil, s.errorf("no intact generation left: %w", errors.Join(skipped...))
}

// loadCurrent loads the current checkpoint; ErrNoCheckpoint if there is
// none, or it is generation 0.
func (s *Session) loadCurrent(ctx context.Context) (*storage.Checkpoint, error) {
	cp, err := s.load(ctx, CheckpointObject, "")
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("%w", storage.ErrNoCheckpoint)
	}
	return cp, err
}

func (s *Session) loadGeneration(ctx context.Context, n uint64) (*storage.Checkpoint, error) {
	cur, err := s.current(ctx)
	if err == nil && cur != nil && cur.h.Generation == n && n > 0 {
		cp, err := s.load(ctx, CheckpointObject, cur.etag)
		if !errors.Is(err, fs.ErrNotExist) && !isPrecondition(err) {
			return cp, err
		}
		// Replaced since: generation n is now history.
	}
	cp, err := s.load(ctx, historyName(n), "")
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("generation %d: %w", n, storage.ErrNoGeneration)
	}
	if err == nil && cp.Header.Generation != n {
		cp.Close()
		return nil, s.errorf("%s: %w", s.st.url(s.key(historyName(n))), &checkpoint.CorruptError{Reason: fmt.Sprintf("holds generation %d, not %d", cp.Header.Generation, n)})
	}
	return cp, err
}

// load downloads and verifies checkpoint object name (with ifMatch, that
// version of it) and returns it positioned on its payload. Generation 0 is
// ErrNoCheckpoint.
func (s *Session) load(ctx context.Context, name, ifMatch string) (*storage.Checkpoint, error) {
	v, err := s.download(ctx, name, ifMatch)
	if err != nil {
		return nil, err
	}
	if v.info.Header.Generation == 0 || v.info.Header.NoPayload {
		v.Close()
		return nil, s.errorf("%w", storage.ErrNoCheckpoint)
	}
	return v.checkpoint(), nil
}
