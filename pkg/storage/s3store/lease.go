package s3store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// leaseRecord is the content of a lease object, session.next: who holds the
// lock and until when. Every write of it differs (Renewed changes, Token is
// random), so every write has its own ETag.
type leaseRecord struct {
	Owner *checkpoint.Owner `json:"owner,omitempty"`
	// Token is random and names this lease across its renewals.
	Token    string    `json:"token"`
	Acquired time.Time `json:"acquired"`
	Renewed  time.Time `json:"renewed"`
	// Expires is Renewed plus the duration, by the writer's clock; readers
	// prefer the server's clock (see judge).
	Expires    time.Time `json:"expires"`
	DurationMS int64     `json:"duration_ms"`
}

// maxLeaseSize bounds what is read of a lease object.
const maxLeaseSize = 64 << 10

// leaseState is a lease object as read.
type leaseState struct {
	rec       *leaseRecord // nil if the object is not a lease record
	etag      string
	modified  time.Time // Last-Modified, by the server's clock
	serverNow time.Time // the response's Date, by the server's clock; zero if none
}

// readLease reads the lease object name; nil if there is none.
func (b *Backend) readLease(ctx context.Context, name string) (*leaseState, error) {
	out, err := b.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.st.bucket, Key: b.key(name)})
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, b.reqErr("get", name, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxLeaseSize))
	if err != nil {
		return nil, b.reqErr("get", name, err)
	}
	ls := &leaseState{etag: aws.ToString(out.ETag), modified: aws.ToTime(out.LastModified)}
	if t, ok := awsmiddleware.GetServerTime(out.ResultMetadata); ok {
		ls.serverNow = t
	}
	var rec leaseRecord
	if json.Unmarshal(data, &rec) == nil && rec.Token != "" {
		ls.rec = &rec
	}
	return ls, nil
}

// judge decides whether the lease in ls is stale. It compares the lease's
// Last-Modified with the Date of the response that returned it, both by the
// server's clock, so that no two machines' clocks are compared; only when
// the server sends no Date does it compare the writer's renewal time with
// this host's clock, now.
func (b *Backend) judge(ls *leaseState, name string, now time.Time) *storage.Lock {
	l := &storage.Lock{Since: ls.modified}
	ttl := b.st.o.LeaseDuration
	if ls.rec != nil {
		l.Owner = ls.rec.Owner
		if ls.rec.DurationMS > 0 {
			ttl = time.Duration(ls.rec.DurationMS) * time.Millisecond
		}
	}
	limit := ttl + b.st.o.StaleGrace
	var age time.Duration
	var clock string
	switch {
	case !ls.serverNow.IsZero() && !ls.modified.IsZero():
		age, clock = ls.serverNow.Sub(ls.modified), "by the server's clock"
	case ls.rec != nil:
		age, clock = now.Sub(ls.rec.Renewed), "by this host's clock"
	default:
		age, clock = now.Sub(ls.modified), "by this host's clock"
	}
	l.Stale = age > limit
	age = max(age, 0).Round(time.Second)
	switch {
	case ls.rec == nil && l.Stale:
		l.Reason = fmt.Sprintf("%s is not a lease ckpt wrote, and is %s old %s", name, age, clock)
	case ls.rec == nil:
		l.Reason = fmt.Sprintf("%s is not a lease ckpt wrote; it is %s old %s, stale after %s", name, age, clock, limit)
	case l.Stale:
		l.Reason = fmt.Sprintf("its lease expired: not renewed for %s %s, and it lasts %s", age, clock, ttl)
	default:
		l.Reason = fmt.Sprintf("its writer renewed its lease %s ago %s, and it lasts %s", age, clock, ttl)
	}
	return l
}

// lostError is the error of a writer whose lease is no longer its own.
func (b *Backend) lostError(why string) *storage.LockedError {
	return &storage.LockedError{Session: b.id, Lost: true, Lock: storage.Lock{Reason: why}}
}

// lease is a writer's hold on session.next, the storage.Held of Lock.
// Between Lock and Release a goroutine renews it every third of its
// duration, with If-Match on the ETag of its last write.
type lease struct {
	b     *Backend
	name  string // the lease object: session.next, or a step's claim
	token string
	owner *checkpoint.Owner
	ttl   time.Duration
	start time.Time

	mu      sync.Mutex
	etag    string
	renewed time.Time // when the last successful write of it was sent, by the local monotonic clock
	lost    error     // a Lost *storage.LockedError, once it is no longer ours

	released bool

	cancel context.CancelFunc // stops the renewing goroutine
	done   chan struct{}
}

var _ storage.Held = (*lease)(nil)

func randomToken() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(b[:])
}

func (l *lease) record(now time.Time) []byte {
	rec := leaseRecord{
		Owner:      l.owner,
		Token:      l.token,
		Acquired:   l.start.UTC(),
		Renewed:    now.UTC(),
		Expires:    now.Add(l.ttl).UTC(),
		DurationMS: l.ttl.Milliseconds(),
	}
	data, _ := json.Marshal(rec) // cannot fail: plain fields
	return data
}

// putLease writes a lease record: with ifMatch "", only if there is none
// (If-None-Match: *), else only over that version (If-Match).
func (b *Backend) putLease(ctx context.Context, name string, body []byte, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        &b.st.bucket,
		Key:           b.key(name),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := b.st.client.PutObject(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// Lock implements storage.Backend: it creates the lease object name
// (session.next, or a step's claim) with If-None-Match: *. If it exists, Lock fails with a *storage.LockedError
// that says whose it is and whether it is stale. The lease is renewed in
// the background until Release.
func (b *Backend) Lock(ctx context.Context, name string, owner *checkpoint.Owner) (storage.Held, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	l, err := b.acquire(ctx, name, owner)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	if !b.st.noRenew {
		l.keepAlive()
	}
	return l, nil
}

func (b *Backend) acquire(ctx context.Context, name string, owner *checkpoint.Owner) (*lease, error) {
	l := &lease{b: b, name: name, token: randomToken(), owner: owner, ttl: b.st.o.LeaseDuration, start: time.Now()}
	var ls *leaseState
	for range 3 {
		t0 := time.Now()
		etag, err := b.putLease(ctx, name, l.record(t0), "")
		if err == nil {
			l.etag, l.renewed = etag, t0
			return l, nil
		}
		if !isPrecondition(err) {
			return b.resolveAcquire(ctx, l, t0, b.reqErr("put", name, err))
		}
		if ls, err = b.readLease(ctx, name); err != nil {
			return nil, err
		}
		if ls != nil && ls.rec != nil && ls.rec.Token == l.token {
			// Ours: the SDK retried a create that had succeeded.
			l.etag, l.renewed = ls.etag, t0
			return l, nil
		}
		if ls != nil {
			return nil, &storage.LockedError{Session: b.id, Lock: *b.judge(ls, name, time.Now())}
		}
		// Released between our attempt and our look: try again.
	}
	return nil, &storage.LockedError{Session: b.id, Lock: storage.Lock{Reason: "other writers kept taking and releasing it"}}
}

// resolveAcquire finds out what a create of the lease whose outcome is
// unknown (a lost response, a cancelled request) did, before answering: a
// lease that landed is this writer's, adopted, or released when the caller
// has given up; otherwise perr stands. Without this, a create that landed
// would leave a live-looking lease that nobody renews or releases.
func (b *Backend) resolveAcquire(ctx context.Context, l *lease, t0 time.Time, perr error) (*lease, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout(l.ttl))
	defer cancel()
	ls, err := b.readLease(rctx, l.name)
	switch {
	case err != nil:
		return nil, errors.Join(perr, err)
	case ls == nil || ls.rec == nil || ls.rec.Token != l.token:
		return nil, perr
	case ctx.Err() != nil:
		return nil, errors.Join(perr, b.deleteLease(rctx, l.name, ls.etag))
	}
	l.etag, l.renewed = ls.etag, t0
	return l, nil
}

// settleTimeout bounds the requests that settle a lease after the caller
// is done with it: finding out what a lost create did, and the release. A
// lease's own duration is too short a bound there: a writer paused (or just
// slow) while it releases would report a save that is in place as failed.
// Waiting longer costs nothing but time, and a broken lease is found so.
func settleTimeout(ttl time.Duration) time.Duration { return max(ttl, 30*time.Second) }

// keepAlive starts the goroutine that renews the lease until Release.
func (l *lease) keepAlive() {
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel, l.done = cancel, make(chan struct{})
	go func() {
		defer close(l.done)
		interval := l.ttl / 3
		t := time.NewTimer(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			rctx, rcancel := context.WithTimeout(ctx, interval)
			err := l.renew(rctx)
			rcancel()
			if errors.As(err, new(*storage.LockedError)) {
				return // broken: nothing left to renew
			}
			next := interval
			if err != nil {
				next = interval / 4 // a transient failure: try again soon
			}
			t.Reset(next)
		}
	}()
}

// stopRenewing stops the renewing goroutine, if any, and waits for it.
func (l *lease) stopRenewing() {
	if l.cancel != nil {
		l.cancel()
		<-l.done
		l.cancel = nil
	}
}

// renew rewrites the lease with If-Match on its last ETag. That fails if
// anyone broke it, and then renew returns, and keeps returning, a Lost
// *storage.LockedError.
func (l *lease) renew(ctx context.Context) error {
	l.mu.Lock()
	etag, lost := l.etag, l.lost
	l.mu.Unlock()
	if lost != nil {
		return lost
	}
	t0 := time.Now()
	newTag, err := l.b.putLease(ctx, l.name, l.record(t0), etag)
	if err == nil {
		l.mu.Lock()
		l.etag, l.renewed = newTag, t0
		l.mu.Unlock()
		return nil
	}
	if !isPrecondition(err) && !isNotFound(err) {
		return l.b.reqErr("renew", l.name, err)
	}
	ls, rerr := l.b.readLease(ctx, l.name)
	if rerr != nil {
		return rerr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls != nil && ls.rec != nil && ls.rec.Token == l.token {
		// Ours: the SDK retried a renewal that had succeeded.
		l.etag, l.renewed = ls.etag, t0
		return nil
	}
	l.lost = l.b.lostError("this writer's lease was broken (another writer may have saved since); nothing was saved")
	return l.lost
}

// Check implements storage.Held. It sends no request while the lease was
// renewed less than half its duration ago. Otherwise it renews it at once:
// a renewal, conditional on the lease's last ETag, succeeds only if nobody
// broke it. A lease that could not be renewed for its whole duration is
// lost, since another writer may have judged it stale and broken it.
func (l *lease) Check(ctx context.Context) error {
	l.mu.Lock()
	age, lost, released := time.Since(l.renewed), l.lost, l.released
	l.mu.Unlock()
	switch {
	case lost != nil:
		return lost
	case released:
		return l.b.lostError("this writer's lock was already released")
	case age < l.ttl/2:
		return nil
	}
	err := l.renew(ctx)
	switch {
	case err == nil, errors.As(err, new(*storage.LockedError)):
		return err
	case age <= l.ttl:
		return nil // still ours, though the server cannot confirm it now
	}
	return l.b.lostError(fmt.Sprintf("this writer's lease was not renewed for %s and may have been broken (it lasts %s; renewing it failed: %v); nothing was saved",
		age.Round(time.Second), l.ttl, err))
}

// verify reads the lease: nil if it is still this writer's, a Lost
// *storage.LockedError if it is not.
func (l *lease) verify(ctx context.Context) error {
	ls, err := l.b.readLease(ctx, l.name)
	if err != nil {
		return err
	}
	if ls != nil && ls.rec != nil && ls.rec.Token == l.token {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost == nil {
		l.lost = l.b.lostError("this writer's lease was broken and another writer saved, or the session was removed; nothing was saved")
	}
	return l.lost
}

// Release implements storage.Held: it stops renewing and deletes the lease
// if it is still this writer's. A lease broken meanwhile is no error:
// nothing of this writer's is left to remove. The deletion is sent even
// when ctx is done, rather than leave the lease to go stale.
func (l *lease) Release(ctx context.Context) error {
	l.mu.Lock()
	released := l.released
	l.released = true
	l.mu.Unlock()
	if released {
		return nil
	}
	l.stopRenewing()
	l.mu.Lock()
	etag, lost := l.etag, l.lost
	l.mu.Unlock()
	if lost != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout(l.ttl))
	defer cancel()
	for range 3 {
		err := l.b.deleteLease(ctx, l.name, etag)
		if err != nil && !errors.Is(err, errLeaseChanged) {
			// A delete whose response was lost may have landed.
			if ls, rerr := l.b.readLease(ctx, l.name); rerr == nil && (ls == nil || ls.rec == nil || ls.rec.Token != l.token) {
				return nil
			}
			return err
		}
		if err == nil {
			return nil
		}
		// A renewal that stopRenewing cancelled may have been applied all
		// the same, under an ETag this writer never saw: if the lease
		// still holds this writer's token, it is still to be removed.
		ls, err := l.b.readLease(ctx, l.name)
		if err != nil {
			return err
		}
		if ls == nil || ls.rec == nil || ls.rec.Token != l.token {
			return nil
		}
		etag = ls.etag
	}
	return l.b.lostError("could not remove this writer's own lease: it kept changing")
}

// errLeaseChanged means that a lease object is no longer the version a
// conditional delete named, or is gone.
var errLeaseChanged = errors.New("the lease changed")

// deleteLease deletes the lease object name if its ETag is still etag: with If-Match
// where the server honours it on DELETE, else by checking the ETag first,
// which leaves a window of one request in which a renewal can slip in.
func (b *Backend) deleteLease(ctx context.Context, name, etag string) error {
	in := &s3.DeleteObjectInput{Bucket: &b.st.bucket, Key: b.key(name)}
	if b.st.ConditionalDelete() {
		in.IfMatch = aws.String(etag)
	} else {
		out, err := b.st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.st.bucket, Key: in.Key})
		switch {
		case isNotFound(err):
			return errLeaseChanged
		case err != nil:
			return b.reqErr("head", name, err)
		case aws.ToString(out.ETag) != etag:
			return errLeaseChanged
		}
	}
	_, err := b.st.client.DeleteObject(ctx, in)
	switch {
	case isPrecondition(err), isNotFound(err):
		return errLeaseChanged
	case err != nil:
		return b.reqErr("delete", name, err)
	}
	return nil
}

// InspectLock implements storage.Backend: one GET of the lease, judged by
// the server's clock.
func (b *Backend) InspectLock(ctx context.Context, name string) (*storage.Lock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ls, err := b.readLease(ctx, name)
	if err != nil || ls == nil {
		return nil, err
	}
	return b.judge(ls, name, time.Now()), nil
}

// BreakLock implements storage.Backend. It judges the lease, and deletes
// only the version it judged: if the lease was renewed or replaced
// meanwhile, it looks again. Having broken the session's lease, it aborts
// the multipart uploads the writer left: those started before the lease was
// judged.
func (b *Backend) BreakLock(ctx context.Context, name string, force bool) (*storage.Lock, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	for range 8 {
		ls, err := b.readLease(ctx, name)
		if err != nil {
			return nil, err
		}
		if ls == nil {
			return nil, nil
		}
		l := b.judge(ls, name, time.Now())
		if !l.Stale && !force {
			return nil, &storage.LockedError{Session: b.id, Lock: *l}
		}
		switch err := b.deleteLease(ctx, name, ls.etag); {
		case errors.Is(err, errLeaseChanged):
			continue // renewed, replaced or released: judge again
		case err != nil:
			return nil, fmt.Errorf("break lock: %w", err)
		}
		if name != leaseObject {
			return l, nil
		}
		_, err = b.abortUploads(ctx, uploadCutoff(ls), false)
		return l, err
	}
	return nil, fmt.Errorf("break lock of %s: %s kept changing", b.Location(), name)
}

// uploadCutoff returns the time before which the multipart uploads of the
// session are orphans once the lease ls is broken. A writer uploads only
// while it holds the lease, so every upload started before the lease was
// judged is the broken writer's. The time is the server's, as the uploads'
// are.
func uploadCutoff(ls *leaseState) time.Time {
	if !ls.serverNow.IsZero() {
		return ls.serverNow
	}
	return ls.modified
}
