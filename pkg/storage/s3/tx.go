package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// tx is the storage.Tx of a Session: it holds the lease from begin until
// Commit or Abort.
type tx struct {
	s     *Session
	c     *storage.SaveConfig
	lease *lease
	base  *objHeader // the current checkpoint as read under the lease; nil if none
	keep  *verified  // the base, downloaded and verified, with KeepPayload
	next  *checkpoint.Header
	saved *storage.Saved
	done  bool
}

var _ storage.Tx = (*tx)(nil)

// Save implements storage.Session: it is Begin followed by Commit.
func (s *Session) Save(ctx context.Context, payload io.Reader, opts ...storage.SaveOption) (*storage.Saved, error) {
	t, err := s.begin(ctx, storage.NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	return t.Commit(ctx, payload)
}

// Begin implements storage.Session: it takes the lease and reads the
// current checkpoint under it. It fails at once with a *storage.LockedError
// if another writer holds the lease; wrap it in a storage.Waiter to wait.
// With IfGeneration, the generation is checked here, under the lease. Until
// Commit or Abort the lease is renewed in the background.
func (s *Session) Begin(ctx context.Context, opts ...storage.SaveOption) (storage.Tx, error) {
	t, err := s.begin(ctx, storage.NewSaveConfig(opts))
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return t, nil
}

// Lock is Begin for a caller that wants the lock held while it works: it
// returns the transaction and the function that releases the lock. Calling
// the function after Commit does nothing.
func (s *Session) Lock(ctx context.Context, opts ...storage.SaveOption) (storage.Tx, func() error, error) {
	t, err := s.begin(ctx, storage.NewSaveConfig(opts))
	if err != nil {
		return nil, nil, err
	}
	return t, t.Abort, nil
}

// Run runs fn in a transaction, as storage.Dir's Run does.
func (s *Session) Run(ctx context.Context, fn func(ctx context.Context, tx storage.Tx) error, opts ...storage.SaveOption) (*storage.Saved, error) {
	t, err := s.begin(ctx, storage.NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	defer t.Abort()
	if err := fn(ctx, t); err != nil {
		return nil, err
	}
	return t.saved, nil
}

// begin takes the lease, then reads the current checkpoint: under the lease
// it cannot change, except by a writer that broke the lease, which the
// If-Match of the final write then catches.
func (s *Session) begin(ctx context.Context, c *storage.SaveConfig) (_ *tx, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	owner := storage.CurrentOwner(c.Command, c.Now())
	l, err := s.acquire(ctx, owner)
	if err != nil {
		var le *storage.LockedError
		if c.Init && errors.As(err, &le) {
			return nil, s.errorf("%w: another process is creating it", ErrExist)
		}
		return nil, err
	}
	if !s.st.noRenew {
		l.keepAlive()
	}
	t := &tx{s: s, c: c, lease: l}
	defer func() {
		if err != nil {
			err = errors.Join(err, t.Abort())
		}
	}()
	if t.base, err = s.current(ctx); err != nil {
		return nil, err
	}
	var gen uint64
	if t.base != nil {
		gen = t.base.h.Generation
	} else if err := s.checkBesidesLease(ctx, c.Init); err != nil {
		return nil, err
	}
	switch {
	case c.Init && t.base != nil:
		return nil, s.errorf("%w", ErrExist)
	case c.IfGeneration != nil && *c.IfGeneration != gen:
		return nil, s.errorf("%w: expected generation %d, the current one is %d", storage.ErrConflict, *c.IfGeneration, gen)
	case c.KeepPayload && t.base == nil:
		return nil, s.errorf("%w", storage.ErrNoCheckpoint)
	}
	if c.KeepPayload && gen > 0 {
		if t.keep, err = s.download(ctx, CheckpointObject, t.base.etag); err != nil {
			return nil, err
		}
	}
	var prev *checkpoint.Header
	if t.base != nil {
		prev = t.base.h
	}
	if t.next, err = c.NextHeader(prev, owner); err != nil {
		return nil, s.errorf("%w", err)
	}
	return t, nil
}

// checkBesidesLease is begin's check when the session has no checkpoint:
// unless init, some other object of the session must exist (else there is
// no such session, and the lease just taken must not create one); with
// init, none may.
func (s *Session) checkBesidesLease(ctx context.Context, init bool) error {
	out, err := s.st.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: &s.st.bucket, Prefix: aws.String(s.dir), MaxKeys: aws.Int32(2)})
	if err != nil {
		return s.errorf("%w", s.st.requestError("list", s.dir, err))
	}
	others := 0
	for _, o := range out.Contents {
		if aws.ToString(o.Key) != s.key(LeaseObject) {
			others++
		}
	}
	switch {
	case init && others > 0:
		return s.errorf("%w", ErrExist)
	case !init && others == 0:
		return s.errorf("%w", storage.ErrNotFound)
	}
	return nil
}

// Base implements storage.Tx.
func (t *tx) Base() *checkpoint.Header {
	if t.base == nil {
		return nil
	}
	return t.base.h
}

// Next implements storage.Tx.
func (t *tx) Next() *checkpoint.Header { return t.next }

// Load implements storage.Tx: it loads the version of the checkpoint read
// under the lease.
func (t *tx) Load(ctx context.Context) (*storage.Checkpoint, error) {
	if t.base == nil {
		return t.s.loadCurrent(ctx)
	}
	cp, err := t.s.load(ctx, CheckpointObject, t.base.etag)
	if isPrecondition(err) {
		return nil, t.s.lostError("the checkpoint changed under this writer: its lease was broken")
	}
	return cp, err
}

// Commit implements storage.Tx. It streams the checkpoint up (in parts, if
// it is larger than one), renews the lease once more (which fails if the
// lease was broken), keeps the generation it replaces as history, and
// then makes the new checkpoint current with If-Match on the ETag of the
// checkpoint read under the lease (If-None-Match: * if there was none). If
// anyone else saved since, that fails and nothing changes: a writer whose
// lease was broken cannot overwrite what came after it.
func (t *tx) Commit(ctx context.Context, payload io.Reader) (saved *storage.Saved, err error) {
	if t.done {
		return nil, errors.New("transaction already ended")
	}
	s, c := t.s, t.c
	up := s.newUpload(ctx, CheckpointObject, t.lease.lostErr)
	defer func() {
		if err != nil {
			err = errors.Join(err, up.abort(ctx), t.Abort())
		}
	}()
	if c.KeepPayload {
		payload = nil
		if t.keep != nil {
			payload = t.keep.payload()
		}
	}
	cw, err := checkpoint.NewWriter(up, t.next)
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	if payload != nil {
		// The struct hides payload's WriterTo, so that the copy goes
		// through buf and never asks for more memory than that.
		buf := make([]byte, 256<<10)
		if _, err := io.CopyBuffer(cw, struct{ io.Reader }{ctxReader{ctx, payload}}, buf); err != nil {
			return nil, s.errorf("write checkpoint: %w", err)
		}
	}
	if cw.Size() == 0 && !(c.Init || c.AllowEmpty || c.KeepPayload) {
		return nil, s.errorf("%w", storage.ErrEmpty)
	}
	if err := cw.Close(); err != nil {
		return nil, s.errorf("write checkpoint: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// From here on the session changes: only the lease's holder may. A
	// last renewal proves the lease is still ours and gives the rest a
	// whole lease duration.
	t.lease.stopRenewing()
	if err := t.lease.renew(ctx); err != nil {
		return nil, err
	}
	if err := t.rotate(ctx); err != nil {
		return nil, err
	}
	// Copying a large checkpoint into history takes a while: renew again
	// if it took a third of the lease.
	if err := t.lease.renewIfOlder(ctx, t.lease.ttl/3); err != nil {
		return nil, err
	}
	if hook := s.st.beforeFinal; hook != nil {
		hook(s.id)
	}
	var cond condition
	if t.base != nil {
		cond.ifMatch = t.base.etag
	}
	if _, err := up.finish(ctx, cond); err != nil {
		// The write may have landed all the same: the SDK retries a
		// request whose response was lost, and the retry of a conditional
		// write that succeeded fails its condition.
		ours, rerr := t.landed(ctx)
		switch {
		case ours:
		case isPrecondition(err) || isNotFound(err):
			return nil, errors.Join(t.lostAtCommit(), rerr)
		default:
			return nil, err
		}
	}
	t.done = true
	t.closeKeep()
	t.saved = &storage.Saved{Header: t.next, Size: cw.Size()}
	// Saved: release the lease even if ctx is done now, rather than leave
	// it to go stale.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.lease.ttl)
	defer cancel()
	if err := t.lease.release(rctx); err != nil {
		return nil, s.errorf("generation %d was saved, but releasing the lock failed (it goes stale %s after its last renewal): %w", t.next.Generation, t.lease.ttl, err)
	}
	return t.saved, nil
}

// landed reports whether the current checkpoint is the one this
// transaction wrote, after its final write failed a condition.
func (t *tx) landed(ctx context.Context) (bool, error) {
	cur, err := t.s.current(ctx)
	if err != nil || cur == nil {
		return false, err
	}
	h, n := cur.h, t.next
	return h.Generation == n.Generation && h.Saved.Equal(n.Saved) && sameOwner(h.Owner, n.Owner), nil
}

func sameOwner(a, b *checkpoint.Owner) bool {
	return a != nil && b != nil && a.PID == b.PID && a.Host == b.Host && a.User == b.User &&
		a.Command == b.Command && a.Started.Equal(b.Started)
}

func (t *tx) lostAtCommit() error {
	if t.c.Init {
		return t.s.errorf("%w: another process created it", ErrExist)
	}
	return t.s.lostError("the checkpoint changed under this writer: its lease was broken and another writer saved, or the session was removed; nothing was saved")
}

// rotate keeps the checkpoint being replaced as history, copied to
// session.<generation> with the copy's source pinned to the ETag read
// under the lease, and removes generations that fall out of the last keep.
// It runs before the final write, so that at every moment an intact
// checkpoint is stored under its final name.
func (t *tx) rotate(ctx context.Context) error {
	s := t.s
	keep := t.c.Keep
	if keep <= 0 {
		keep = storage.DefaultKeep
	}
	if keep > 1 && t.base != nil && t.base.h.Generation > 0 {
		err := s.copyObject(ctx, CheckpointObject, historyName(t.base.h.Generation), t.base.etag, t.base.total)
		if isPrecondition(err) || isNotFound(err) {
			return t.lostAtCommit()
		}
		if err != nil {
			return s.errorf("keep generation %d: %w", t.base.h.Generation, err)
		}
	}
	gens, err := s.historyGenerations(ctx)
	if err != nil {
		return err
	}
	for _, g := range gens {
		if g+uint64(keep) <= t.next.Generation {
			if err := s.deleteObject(ctx, historyName(g)); err != nil {
				return s.errorf("drop generation %d: %w", g, err)
			}
		}
	}
	return nil
}

// Abort implements storage.Tx.
func (t *tx) Abort() error {
	if t.done {
		return nil
	}
	t.done = true
	t.closeKeep()
	ctx, cancel := context.WithTimeout(context.Background(), t.lease.ttl)
	defer cancel()
	if err := t.lease.release(ctx); err != nil {
		return fmt.Errorf("release the lock: %w", err)
	}
	return nil
}

func (t *tx) closeKeep() {
	if t.keep != nil {
		t.keep.Close()
		t.keep = nil
	}
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
