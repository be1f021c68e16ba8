package storage_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"syscall"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// faultBackend wraps any storage.Backend and fails one chosen primitive:
// the nth call of op (counting from 1 once armed) returns err, and, when
// lost is set, the primitive is applied first, as when a server applies a
// write and its response is lost. Unarmed, it passes every call through,
// counting them, so that the conformance suite runs through it unchanged.
// It can also make every object look older than it is (age), for the
// checks that only judge objects past a grace period.
type faultBackend struct {
	storage.Backend

	mu    sync.Mutex
	calls map[string]int // calls per primitive since the last arm
	op    string         // "" when unarmed
	nth   int
	err   error
	lost  bool
	fired bool
	age   time.Duration
}

func newFaultBackend(b storage.Backend) *faultBackend {
	return &faultBackend{Backend: b, calls: map[string]int{}}
}

// Unwrap returns the wrapped backend.
func (f *faultBackend) Unwrap() storage.Backend { return f.Backend }

// The primitives faultBackend can fail. Write primitives can also lose
// their response.
var faultWriteOps = map[string]bool{"Create": true, "Put": true, "Copy": true, "Commit": true, "Delete": true, "Release": true, "BreakLock": true}

// arm makes the nth call of op, from now on, fail with err, after applying
// it when lost is set; it resets the call counts.
func (f *faultBackend) arm(op string, nth int, err error, lost bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.op, f.nth, f.err, f.lost, f.fired = op, nth, err, lost, false
	f.calls = map[string]int{}
}

// disarm stops injecting and returns whether the fault fired and the calls
// made since arm.
func (f *faultBackend) disarm() (fired bool, calls map[string]int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fired, calls = f.fired, f.calls
	f.op, f.calls = "", map[string]int{}
	return fired, calls
}

// fault counts a call of op and says whether it fails, and if so whether
// the primitive is applied first.
func (f *faultBackend) fault(op string) (err error, apply bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[op]++
	if f.op != op || f.calls[op] != f.nth {
		return nil, true
	}
	f.fired = true
	if f.lost {
		return fmt.Errorf("injected lost response of %s: %w", op, f.err), true
	}
	return fmt.Errorf("injected %s failure: %w", op, f.err), false
}

// call runs a primitive with the fault, if any.
func (f *faultBackend) call(op string, do func() error) error {
	ferr, apply := f.fault(op)
	if apply {
		if err := do(); err != nil {
			return err
		}
	}
	return ferr
}

func (f *faultBackend) older(info storage.ObjectInfo) storage.ObjectInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	info.Modified = info.Modified.Add(-f.age)
	return info
}

func (f *faultBackend) Check(ctx context.Context) error {
	return f.call("Check", func() error { return f.Backend.Check(ctx) })
}

// faultHeld wraps a lock so that its Release can fail; Commit is given the
// wrapped backend's own lock.
type faultHeld struct {
	storage.Held
	f *faultBackend
}

func (h faultHeld) Release(ctx context.Context) error {
	return h.f.call("Release", func() error { return h.Held.Release(ctx) })
}

func (f *faultBackend) Lock(ctx context.Context, name string, owner *checkpoint.Owner) (storage.Held, error) {
	var held storage.Held
	err := f.call("Lock", func() (err error) { held, err = f.Backend.Lock(ctx, name, owner); return err })
	if err != nil {
		if held != nil {
			// The lock was taken but the caller will not know it: a
			// lost response. Let it go, as a backend must when it
			// cannot tell the caller.
			_ = held.Release(ctx)
		}
		return nil, err
	}
	return faultHeld{held, f}, nil
}

func (f *faultBackend) InspectLock(ctx context.Context, name string) (l *storage.Lock, err error) {
	err = f.call("InspectLock", func() (err error) { l, err = f.Backend.InspectLock(ctx, name); return err })
	return l, err
}

func (f *faultBackend) BreakLock(ctx context.Context, name string, force bool) (l *storage.Lock, err error) {
	err = f.call("BreakLock", func() (err error) { l, err = f.Backend.BreakLock(ctx, name, force); return err })
	return l, err
}

func (f *faultBackend) ReadHead(ctx context.Context, name string, n int64) (b []byte, info storage.ObjectInfo, err error) {
	err = f.call("ReadHead", func() (err error) { b, info, err = f.Backend.ReadHead(ctx, name, n); return err })
	if err != nil {
		return nil, storage.ObjectInfo{}, err
	}
	return b, f.older(info), nil
}

func (f *faultBackend) Open(ctx context.Context, name string) (o storage.Object, err error) {
	err = f.call("Open", func() (err error) { o, err = f.Backend.Open(ctx, name); return err })
	if err != nil && o != nil {
		o.Close()
		o = nil
	}
	return o, err
}

func (f *faultBackend) Create(ctx context.Context, name string, r io.Reader) (n int64, err error) {
	err = f.call("Create", func() (err error) { n, err = f.Backend.Create(ctx, name, r); return err })
	return n, err
}

func (f *faultBackend) Put(ctx context.Context, name string, data []byte) error {
	return f.call("Put", func() error { return f.Backend.Put(ctx, name, data) })
}

func (f *faultBackend) Copy(ctx context.Context, src, dst string) error {
	return f.call("Copy", func() error { return f.Backend.Copy(ctx, src, dst) })
}

func (f *faultBackend) Commit(ctx context.Context, held storage.Held, base string, data []byte) error {
	if h, ok := held.(faultHeld); ok {
		held = h.Held
	}
	return f.call("Commit", func() error { return f.Backend.Commit(ctx, held, base, data) })
}

func (f *faultBackend) ListUnder(ctx context.Context, dir string) (objs []storage.ObjectInfo, err error) {
	err = f.call("ListUnder", func() (err error) { objs, err = f.Backend.ListUnder(ctx, dir); return err })
	return objs, err
}

func (f *faultBackend) List(ctx context.Context) (objs []storage.ObjectInfo, err error) {
	err = f.call("List", func() (err error) { objs, err = f.Backend.List(ctx); return err })
	for i := range objs {
		objs[i] = f.older(objs[i])
	}
	return objs, err
}

func (f *faultBackend) Delete(ctx context.Context, names ...string) error {
	return f.call("Delete", func() error { return f.Backend.Delete(ctx, names...) })
}

func (f *faultBackend) CreateLog(ctx context.Context, name string) (w io.WriteCloser, err error) {
	err = f.call("CreateLog", func() (err error) { w, err = f.Backend.CreateLog(ctx, name); return err })
	if err != nil && w != nil {
		w.Close()
		w = nil
	}
	return w, err
}

func (f *faultBackend) OpenLog(ctx context.Context, name string) (r io.ReadCloser, err error) {
	err = f.call("OpenLog", func() (err error) { r, err = f.Backend.OpenLog(ctx, name); return err })
	if err != nil && r != nil {
		r.Close()
		r = nil
	}
	return r, err
}

// faultErrors are the errors every primitive is failed with. A backend's
// own errors (a reset connection, a 500 or 503, a timeout on S3) are
// injected by its own harness; these are what any storage can say.
var faultErrors = []error{syscall.ENOSPC, syscall.EIO, syscall.EROFS}

// unwrapBackend returns the innermost backend under test wrappers.
func unwrapBackend(b storage.Backend) storage.Backend {
	for {
		u, ok := b.(interface{ Unwrap() storage.Backend })
		if !ok {
			return b
		}
		b = u.Unwrap()
	}
}
