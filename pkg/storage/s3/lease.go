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

// readLease reads the session's lease; nil if there is none.
func (s *Session) readLease(ctx context.Context) (*leaseState, error) {
	out, err := s.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(LeaseObject))})
	switch {
	case isNotFound(err):
		return nil, nil
	case err != nil:
		return nil, s.reqErr("get", LeaseObject, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, maxLeaseSize))
	if err != nil {
		return nil, s.reqErr("get", LeaseObject, err)
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
// the server sends no Date does it compare the writer's Expires with this
// host's clock, now.
func (s *Session) judge(ls *leaseState, now time.Time) *storage.Lock {
	l := &storage.Lock{Since: ls.modified}
	ttl := s.st.o.LeaseDuration
	if ls.rec != nil {
		l.Owner = ls.rec.Owner
		if ls.rec.DurationMS > 0 {
			ttl = time.Duration(ls.rec.DurationMS) * time.Millisecond
		}
	}
	grace := s.st.o.StaleGrace
	var age, limit time.Duration
	var clock string
	switch {
	case !ls.serverNow.IsZero() && !ls.modified.IsZero():
		age, limit, clock = ls.serverNow.Sub(ls.modified), ttl+grace, "by the server's clock"
	case ls.rec != nil:
		age, limit, clock = now.Sub(ls.rec.Renewed), ttl+grace, "by this host's clock"
	default:
		age, limit, clock = now.Sub(ls.modified), ttl+grace, "by this host's clock"
	}
	l.Stale = age > limit
	age = max(age, 0).Round(time.Second)
	switch {
	case ls.rec == nil && l.Stale:
		l.Reason = fmt.Sprintf("session.next is not a lease ckpt wrote, and is %s old %s", age, clock)
	case ls.rec == nil:
		l.Reason = fmt.Sprintf("session.next is not a lease ckpt wrote; it is %s old %s, stale after %s", age, clock, limit)
	case l.Stale:
		l.Reason = fmt.Sprintf("its lease expired: not renewed for %s %s, and it lasts %s", age, clock, ttl)
	default:
		l.Reason = fmt.Sprintf("its writer renewed its lease %s ago %s, and it lasts %s", age, clock, ttl)
	}
	return l
}

// lockedError reports the lock in ls, which kept this writer out.
func (s *Session) lockedError(ls *leaseState) *storage.LockedError {
	if ls == nil {
		// Released between our attempt and our look.
		return &storage.LockedError{Session: s.id, Lock: storage.Lock{Reason: "another writer was saving"}}
	}
	return &storage.LockedError{Session: s.id, Lock: *s.judge(ls, time.Now())}
}

// lostError is the error of a writer whose lease was broken.
func (s *Session) lostError(why string) *storage.LockedError {
	return &storage.LockedError{Session: s.id, Lost: true, Lock: storage.Lock{Reason: why}}
}

// lease is a writer's hold on session.next. Between acquire and release a
// goroutine renews it every third of its duration.
type lease struct {
	s     *Session
	token string
	owner *checkpoint.Owner
	ttl   time.Duration
	start time.Time

	mu       sync.Mutex
	etag     string
	deadline time.Time // by the local monotonic clock: nobody judges it stale before
	lost     error     // a *storage.LockedError with Lost, once broken

	cancel context.CancelFunc
	done   chan struct{}
}

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
	b, _ := json.Marshal(rec) // cannot fail: plain fields
	return b
}

// putLease writes a lease record: with ifMatch "", only if there is none
// (If-None-Match: *), else only over that version (If-Match).
func (s *Session) putLease(ctx context.Context, body []byte, ifMatch string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket:        &s.st.bucket,
		Key:           aws.String(s.key(LeaseObject)),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(ifMatch)
	}
	out, err := s.st.client.PutObject(ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

// acquire takes the session's lock: it creates session.next with
// If-None-Match: *. If it exists, acquire fails with a *storage.LockedError
// that says whose it is and whether it is stale.
func (s *Session) acquire(ctx context.Context, owner *checkpoint.Owner) (*lease, error) {
	l := &lease{s: s, token: randomToken(), owner: owner, ttl: s.st.o.LeaseDuration, start: time.Now()}
	t0 := time.Now()
	etag, err := s.putLease(ctx, l.record(t0), "")
	if err == nil {
		l.etag, l.deadline = etag, t0.Add(l.ttl)
		return l, nil
	}
	if !isPrecondition(err) {
		return nil, s.reqErr("put", LeaseObject, err)
	}
	ls, rerr := s.readLease(ctx)
	if rerr != nil {
		return nil, rerr
	}
	if ls != nil && ls.rec != nil && ls.rec.Token == l.token {
		// Ours: the SDK retried a create that had succeeded.
		l.etag, l.deadline = ls.etag, t0.Add(l.ttl)
		return l, nil
	}
	return nil, s.lockedError(ls)
}

// keepAlive starts the goroutine that renews the lease until stopRenewing.
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
			var le *storage.LockedError
			if errors.As(err, &le) {
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
	newTag, err := l.s.putLease(ctx, l.record(t0), etag)
	if err == nil {
		l.mu.Lock()
		l.etag, l.deadline = newTag, t0.Add(l.ttl)
		l.mu.Unlock()
		return nil
	}
	if !isPrecondition(err) && !isNotFound(err) {
		return l.s.reqErr("renew", LeaseObject, err)
	}
	ls, rerr := l.s.readLease(ctx)
	if rerr != nil {
		return rerr
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if ls != nil && ls.rec != nil && ls.rec.Token == l.token {
		// Ours: the SDK retried a renewal that had succeeded.
		l.etag, l.deadline = ls.etag, t0.Add(l.ttl)
		return nil
	}
	l.lost = l.s.lostError("this writer's lease was broken while it was saving; nothing was saved")
	return l.lost
}

// renewIfOlder renews the lease if its last renewal started more than age
// ago.
func (l *lease) renewIfOlder(ctx context.Context, age time.Duration) error {
	l.mu.Lock()
	fresh := time.Until(l.deadline) > l.ttl-age
	l.mu.Unlock()
	if fresh {
		return nil
	}
	return l.renew(ctx)
}

// lostErr returns the Lost error once the renewing goroutine found the
// lease broken, else nil.
func (l *lease) lostErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lost
}

// release stops renewing and deletes the lease if it is still this
// writer's. A lease broken meanwhile is not an error: there is nothing of
// this writer's left to remove.
func (l *lease) release(ctx context.Context) error {
	l.stopRenewing()
	l.mu.Lock()
	etag, lost := l.etag, l.lost
	l.mu.Unlock()
	if lost != nil {
		return nil
	}
	err := l.s.deleteLease(ctx, etag)
	if errors.Is(err, errLeaseChanged) {
		return nil
	}
	return err
}

// errLeaseChanged means that session.next is no longer the version a
// conditional delete named, or is gone.
var errLeaseChanged = errors.New("session.next changed")

// deleteLease deletes session.next if its ETag is still etag: with If-Match
// where the server honours it on DELETE, else by checking the ETag first,
// which leaves a window of one request in which a renewal can slip in.
func (s *Session) deleteLease(ctx context.Context, etag string) error {
	key := aws.String(s.key(LeaseObject))
	in := &s3.DeleteObjectInput{Bucket: &s.st.bucket, Key: key}
	if s.st.condDelete {
		in.IfMatch = aws.String(etag)
	} else {
		out, err := s.st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.st.bucket, Key: key})
		switch {
		case isNotFound(err):
			return errLeaseChanged
		case err != nil:
			return s.reqErr("head", LeaseObject, err)
		case aws.ToString(out.ETag) != etag:
			return errLeaseChanged
		}
	}
	_, err := s.st.client.DeleteObject(ctx, in)
	switch {
	case isPrecondition(err), isNotFound(err):
		return errLeaseChanged
	case err != nil:
		return s.reqErr("delete", LeaseObject, err)
	}
	return nil
}

// BreakLock implements storage.Session. It judges the lease, and deletes
// only the version it judged: if the lease was renewed or replaced
// meanwhile, it looks again. After breaking it, it aborts the multipart
// uploads that the writer left.
func (s *Session) BreakLock(ctx context.Context, force bool) (*storage.Lock, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	for range 8 {
		ls, err := s.readLease(ctx)
		if err != nil {
			return nil, err
		}
		if ls == nil {
			return nil, nil
		}
		l := s.judge(ls, time.Now())
		if !l.Stale && !force {
			return nil, &storage.LockedError{Session: s.id, Lock: *l}
		}
		switch err := s.deleteLease(ctx, ls.etag); {
		case errors.Is(err, errLeaseChanged):
			continue // renewed, replaced or released: judge again
		case err != nil:
			return nil, s.errorf("break lock: %w", err)
		}
		_, err = s.abortUploads(ctx, s.uploadCutoff(ls), false)
		return l, err
	}
	return nil, s.errorf("break lock: session.next kept changing")
}

// uploadCutoff returns the time before which the multipart uploads of the
// session are orphans once the lease ls is broken. A writer uploads only
// while it holds the lease, so every upload started before the lease was
// judged is the broken writer's. The time is the server's, as the uploads'
// are.
func (s *Session) uploadCutoff(ls *leaseState) time.Time {
	switch {
	case !ls.serverNow.IsZero():
		return ls.serverNow
	default:
		return ls.modified
	}
}
