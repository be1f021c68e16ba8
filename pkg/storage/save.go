package storage

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Tx is a transaction on a session: it holds the session's lock from Begin
// until Commit or Abort, so that what it reads stays current until it
// writes. A Tx is not safe for concurrent use.
type Tx struct {
	s    *Session
	c    *SaveConfig
	held Held
	// pass is this writer's passage through the session's gate, left
	// when the lock is released.
	pass *gatePass
	// base is the manifest the next generation builds on, read under the
	// lock: the current one, or, when that is damaged, the newest intact
	// kept one. nil when the session has none.
	base *manifest
	// version is that of "session" as read under the lock, damaged or
	// not: the commit is conditional on it.
	version string
	// kept is the history the base carries.
	kept []checkpoint.Kept
	next *checkpoint.Header
	// created are the objects this transaction wrote, removed if it
	// fails. The history manifest it writes is not among them: any writer
	// on the same base writes the same bytes under that name, and one that
	// broke this writer's lock may be about to commit a manifest naming it;
	// an orphaned one is swept by gc.
	created []string
	saved   *Saved
	done    bool
}

// Save reads payload to its end and commits it as the next generation: it
// is Begin followed by Commit. Saves from goroutines of one process wait
// for each other; see Begin.
func (s *Session) Save(ctx context.Context, payload io.Reader, opts ...SaveOption) (*Saved, error) {
	tx, err := s.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	return tx.Commit(ctx, payload)
}

// Begin takes the session's lock and returns a transaction that will save
// the next generation with opts. With IfGeneration, the generation is
// checked here, under the lock.
//
// Writers of this process to the same session — through this Session, or
// another on the same directory or S3 prefix — take turns: Begin first
// waits until no other transaction, Save, Run, Sweep or Remove of this
// process holds the session's lock, and returns ctx's error (wrapped) if
// ctx is done before. A writer of another process is not waited for: if it
// holds the lock, Begin fails at once with a *LockedError naming it; wrap
// Begin in a Waiter to wait for it.
//
// The caller must end the transaction with Commit or Abort; until then
// writers of other processes get a live *LockedError, and this process's
// wait. A goroutine that holds a transaction and saves to the same session
// again waits for itself, until its ctx is done.
func (s *Session) Begin(ctx context.Context, opts ...SaveOption) (*Tx, error) {
	return s.begin(ctx, NewSaveConfig(opts))
}

// Lock is Begin for a caller that wants the lock held while it works: it
// returns the transaction and the function that releases the lock. Calling
// the function after Commit does nothing.
func (s *Session) Lock(ctx context.Context, opts ...SaveOption) (*Tx, func() error, error) {
	tx, err := s.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, nil, err
	}
	return tx, tx.Abort, nil
}

// Run runs fn in a transaction: it takes the lock, calls fn, and releases
// the lock when fn returns. fn commits by calling tx.Commit; if it returns
// without committing, nothing changes (an empty transaction), and if it
// returns an error, nothing changes and Run returns that error. Run returns
// what Commit saved, or nil.
func (s *Session) Run(ctx context.Context, fn func(ctx context.Context, tx *Tx) error, opts ...SaveOption) (*Saved, error) {
	tx, err := s.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	defer tx.Abort()
	if err := fn(ctx, tx); err != nil {
		return nil, err
	}
	return tx.saved, nil
}

func (s *Session) begin(ctx context.Context, c *SaveConfig) (_ *Tx, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	owner := CurrentOwner(c.Command, c.Now())
	pass, err := enterGate(ctx, s.b, owner)
	if err != nil {
		return nil, s.errorf("wait for another writer of this process: %w", err)
	}
	held, err := s.b.Lock(ctx, NextFile, owner)
	if err != nil {
		pass.leave()
		return nil, err
	}
	tx := &Tx{s: s, c: c, held: held, pass: pass}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Abort())
		}
	}()
	if err := tx.readBase(ctx); err != nil {
		return nil, err
	}
	var gen uint64
	var prev *checkpoint.Header
	if tx.base != nil {
		prev = tx.base.h
		gen = prev.Generation
	}
	switch {
	case c.Init && tx.version != "":
		return nil, s.errorf("%w: already initialized", ErrConflict)
	case c.IfGeneration != nil && *c.IfGeneration != gen:
		return nil, s.errorf("%w: expected generation %d, the current one is %d", ErrConflict, *c.IfGeneration, gen)
	case c.KeepPayload && tx.base == nil:
		return nil, s.errorf("%w", ErrNoCheckpoint)
	}
	if tx.next, err = c.NextHeader(prev, owner); err != nil {
		return nil, s.errorf("%w", err)
	}
	return tx, nil
}

// readBase reads, under the lock, what the next generation builds on.
func (tx *Tx) readBase(ctx context.Context) error {
	s := tx.s
	m, err := s.readManifest(ctx, CheckpointFile)
	var ce *checkpoint.CorruptError
	switch {
	case errors.Is(err, fs.ErrNotExist) && tx.c.Init:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return s.b.Check(ctx)
	case err == nil:
		tx.base, tx.version = m, m.info.Version
		if m.h.Format != 1 {
			tx.kept = m.h.Kept
			return nil
		}
		// Format 1 kept its history as files of its own: carry them.
		gens, err := s.listHistory(ctx)
		for _, g := range gens {
			tx.kept = append(tx.kept, checkpoint.Kept{Generation: g})
		}
		return err
	case !errors.As(err, &ce):
		return err
	}
	// The current manifest is damaged: build on the newest intact kept
	// generation, and replace the damaged one.
	_, info, herr := s.b.ReadHead(ctx, CheckpointFile, 1)
	if herr != nil {
		return errors.Join(err, herr)
	}
	tx.version = info.Version
	gens, lerr := s.listHistory(ctx)
	if lerr != nil {
		return errors.Join(err, lerr)
	}
	for _, g := range gens {
		h, herr := s.readManifest(ctx, historyName(g))
		if herr != nil {
			continue
		}
		if tx.base == nil {
			tx.base = h
			continue
		}
		k := checkpoint.Kept{Generation: g}
		if h.h.Format != 1 && h.hasPayload() {
			k.Payload = h.h.Payload.Object
		}
		tx.kept = append(tx.kept, k)
	}
	if tx.base == nil {
		// Nothing intact to build on: the damaged manifest is not
		// replaced unseen.
		return err
	}
	return nil
}

// Base returns the header of the checkpoint the transaction builds on, as
// read under the lock, nil if the session has none.
func (tx *Tx) Base() *checkpoint.Header {
	if tx.base == nil {
		return nil
	}
	return tx.base.h
}

// Next returns the header Commit will write.
func (tx *Tx) Next() *checkpoint.Header { return tx.next }

// Load returns the checkpoint the transaction builds on, verified; the lock
// keeps it current until the transaction ends.
func (tx *Tx) Load(ctx context.Context) (*Checkpoint, error) {
	if tx.base == nil {
		return nil, tx.s.errorf("%w", ErrNoCheckpoint)
	}
	return tx.s.openPayload(ctx, tx.base)
}

// Commit writes payload (ignored with KeepPayload) as the next generation's
// payload, makes the generation current and releases the lock. The payload
// is stored whole before the manifest that names it is committed. On
// failure nothing changes, what the transaction wrote is removed, and the
// lock is released too.
func (tx *Tx) Commit(ctx context.Context, payload io.Reader) (saved *Saved, err error) {
	if tx.done {
		return nil, errors.New("transaction already ended")
	}
	defer func() {
		if err != nil && !tx.done {
			err = errors.Join(err, tx.Abort())
		}
	}()
	s, c, next, base := tx.s, tx.c, tx.next, tx.base
	keep := c.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	// The base is kept as history, so that a damaged current manifest
	// falls back to the newest generation before it, whose payload may be
	// the very one the new generation shares. Its manifest is written
	// while the payload uploads, or, when there is none to upload, while
	// the new manifest commits.
	shares := c.KeepPayload && base != nil && base.h.Format != 1
	kept := tx.kept
	var keepBase func() error
	if base != nil && base.hasPayload() && !c.Init && keep > 1 {
		k := checkpoint.Kept{Generation: base.h.Generation}
		name := historyName(k.Generation)
		if base.h.Format != 1 {
			k.Payload = base.h.Payload.Object
		}
		kept = append([]checkpoint.Kept{k}, kept...)
		// A base read from history (the current manifest was damaged) is
		// kept already.
		var write func() error
		switch {
		case base.name != CheckpointFile:
		case base.h.Format == 1:
			write = func() error { return s.b.Copy(ctx, base.name, name) }
		default:
			write = func() error { return s.b.Put(ctx, name, base.raw) }
		}
		if write != nil {
			keepBase = func() error {
				if err := write(); err != nil {
					return s.errorf("keep generation %d: %w", k.Generation, err)
				}
				return nil
			}
		}
	}
	writePayload := func() error {
		switch {
		case c.Init:
		case c.KeepPayload && (base == nil || !base.hasPayload()):
			next.NoPayload = true
		case shares:
			p := *base.h.Payload
			next.Payload = &p
		case c.KeepPayload:
			// A format-1 payload moves into an object of its own, once.
			cp, err := s.openPayload(ctx, base)
			if err != nil {
				return err
			}
			defer cp.Close()
			next.Payload, err = tx.writePayload(ctx, cp, true)
			return err
		default:
			var err error
			next.Payload, err = tx.writePayload(ctx, payload, c.AllowEmpty)
			return err
		}
		return nil
	}
	if keepBase != nil && !shares {
		err = parallel(writePayload, keepBase)
		keepBase = nil
	} else {
		err = writePayload()
	}
	if err != nil {
		// Writing fails too when the lock was broken under this writer (on
		// S3 the breaker aborts its upload): say so, rather than blame the
		// storage.
		var le *LockedError
		if lerr := tx.held.Check(ctx); errors.As(lerr, &le) && le.Lost {
			return nil, lerr
		}
		return nil, err
	}
	var dropped []checkpoint.Kept
	next.Kept, dropped = pruneKept(kept, next.Payload, keep)
	data, err := checkpoint.EncodeManifest(next)
	if err != nil {
		return nil, s.errorf("%w", err)
	}
	commit := func() error {
		if err := s.b.Commit(ctx, tx.held, tx.version, data); err != nil {
			// A commit that failed after its commit point (a lost
			// response, a failed directory sync, a lock broken during the
			// rename) may have made this manifest current: then what it
			// names must stay. Every manifest is unique (save time,
			// owner, a random payload name).
			if cur, _, rerr := s.b.ReadHead(context.WithoutCancel(ctx), CheckpointFile, int64(len(data))+1); rerr == nil && bytes.Equal(cur, data) {
				tx.created = nil
				tx.done = true
				return s.errorf("commit: generation %d is in place, but: %w", next.Generation, err)
			}
			var le *LockedError
			if errors.As(err, &le) {
				return err
			}
			return s.errorf("commit: %w", err)
		}
		tx.done = true
		return nil
	}
	if keepBase != nil {
		// A metadata-only generation: the base's manifest is written as
		// history while the new one commits. Should that write fail after
		// the commit, the history it replaces is not removed, so that a
		// listing still finds a manifest naming the shared payload.
		herr := errors.New("not written")
		err = parallel(commit, func() error { herr = keepBase(); return herr })
		if err != nil && tx.done {
			dropped = nil
			_ = tx.release(context.WithoutCancel(ctx))
			if herr != nil {
				return nil, s.errorf("generation %d was saved, but: %w", next.Generation, herr)
			}
			return nil, err
		}
	} else {
		err = commit()
	}
	if err != nil {
		if tx.done {
			// In place after all: the lock is still to be let go of.
			_ = tx.release(context.WithoutCancel(ctx))
		}
		return nil, err
	}
	kept = dropped
	tx.done = true
	tx.saved = &Saved{Header: next, Size: 0}
	if next.Payload != nil {
		tx.saved.Size = next.Payload.Size
	}
	// What the new generation no longer reaches is removed; a failure here
	// leaves only orphans, which Sweep finds and verify reports.
	garbage := tx.unreachable(kept)
	err = parallel(
		func() error {
			if err := tx.release(ctx); err != nil {
				return s.errorf("generation %d was saved, but releasing the lock failed: %w", next.Generation, err)
			}
			return nil
		},
		func() error {
			_ = s.b.Delete(ctx, garbage...)
			return nil
		})
	return tx.saved, err
}

// pruneKept returns the history a new generation with payload p keeps, out
// of kept (newest first), and what it drops: one manifest per payload, the
// newest, and besides the one naming p those of the keep-1 newest other
// payloads. A format-1 file (no payload name) holds a payload of its own.
func pruneKept(kept []checkpoint.Kept, p *checkpoint.Payload, keep int) (out, dropped []checkpoint.Kept) {
	if keep <= 1 {
		return nil, kept
	}
	seen := map[string]bool{}
	others := 0
	for _, k := range kept {
		switch {
		case k.Payload != "" && seen[k.Payload]:
			dropped = append(dropped, k)
		case p != nil && k.Payload == p.Object:
			seen[k.Payload] = true
			out = append(out, k)
		case others < keep-1:
			seen[k.Payload] = k.Payload != ""
			others++
			out = append(out, k)
		default:
			dropped = append(dropped, k)
		}
	}
	return out, dropped
}

// unreachable returns the objects that the committed generation no longer
// reaches: the history it dropped, and payloads nothing kept names.
func (tx *Tx) unreachable(dropped []checkpoint.Kept) []string {
	next := tx.next
	live := map[string]bool{}
	if next.Payload != nil {
		live[next.Payload.Object] = true
	}
	for _, k := range next.Kept {
		live[k.Payload] = true
	}
	var out []string
	for _, k := range dropped {
		out = append(out, historyName(k.Generation))
		if k.Payload != "" && !live[k.Payload] {
			out = append(out, k.Payload)
		}
	}
	if b := tx.base; b != nil && b.h.Format != 1 && b.hasPayload() && !live[b.h.Payload.Object] {
		out = append(out, b.h.Payload.Object)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// writePayload stores r as a new payload object, hashing it as it goes.
func (tx *Tx) writePayload(ctx context.Context, r io.Reader, allowEmpty bool) (*checkpoint.Payload, error) {
	s := tx.s
	if r == nil {
		r = eofReader{}
	}
	br := bufio.NewReaderSize(ctxReader{ctx, r}, 32<<10)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) && !allowEmpty {
		return nil, s.errorf("%w", ErrEmpty)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return nil, s.errorf("read payload: %w", err)
	}
	name := PayloadPrefix + randomHex(16)
	sum := checkpoint.NewPayloadHash()
	tx.created = append(tx.created, name)
	n, err := s.b.Create(ctx, name, io.TeeReader(br, sum))
	if err != nil {
		return nil, s.errorf("write payload: %w", err)
	}
	return &checkpoint.Payload{Object: name, Size: n, SHA256: checkpoint.PayloadSum(sum)}, nil
}

// Abort ends the transaction without saving, removes what it wrote and
// releases the lock. It does nothing after Commit or a first Abort.
func (tx *Tx) Abort() error {
	if tx.done {
		return nil
	}
	tx.done = true
	ctx := context.WithoutCancel(context.Background())
	var err error
	if created := tx.created; len(created) > 0 {
		if derr := tx.s.b.Delete(ctx, created...); derr != nil {
			err = tx.s.errorf("remove what the failed save wrote: %w", derr)
		}
	}
	return errors.Join(err, tx.release(ctx))
}

// release lets go of the lock, and then of the gate.
func (tx *Tx) release(ctx context.Context) error {
	defer tx.pass.leave()
	return tx.held.Release(ctx)
}

// parallel runs fns at once and returns their errors joined.
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Go(func() { errs[i] = fn() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

// The writers' gate. The backend's lock excludes writers of other
// processes, and tells them who holds it; within one process, writers to
// the same session queue at a gate instead, so that goroutines that save
// concurrently, through one Session or through several on the same
// location, wait for each other rather than find the lock held by their own
// process. A writer passes the gate before it takes the backend's lock and
// leaves it once it has released that lock. The gate is a channel with
// room for one token, not a sync.Mutex, so that a waiting writer gives up
// when its context is done.
var gates = struct {
	mu sync.Mutex
	m  map[string]*gate
}{m: map[string]*gate{}}

type gate struct {
	slot chan struct{} // holds a token while a writer is past the gate
	// Under gates.mu:
	users  int       // writers past the gate or waiting at it
	holder *gatePass // the writer past it; nil once revoked
}

// gatePass is one writer's passage through a gate.
type gatePass struct {
	key   string
	g     *gate
	owner *checkpoint.Owner // the owner record of the lock it takes
	once  sync.Once
}

// gateKey names the session b stores for the gate: its location, with a
// relative path made absolute, so that every Session opened on the same
// directory or S3 prefix in this process meets at the same gate.
func gateKey(b Backend) string {
	loc := b.Location()
	if !strings.Contains(loc, "://") {
		if abs, err := filepath.Abs(loc); err == nil {
			loc = abs
		}
	}
	return loc
}

// joinGate counts a writer in at the gate of key, making the gate if need
// be.
func joinGate(key string) *gate {
	gates.mu.Lock()
	defer gates.mu.Unlock()
	g := gates.m[key]
	if g == nil {
		g = &gate{slot: make(chan struct{}, 1)}
		gates.m[key] = g
	}
	g.users++
	return g
}

// leaveGate counts a writer out of g, and forgets g when none is left.
// gates.mu is held.
func leaveGate(key string, g *gate) {
	g.users--
	if g.users == 0 && gates.m[key] == g {
		delete(gates.m, key)
	}
}

// enterGate waits until no other writer of this process is past the gate
// of the session b stores, or until ctx is done, when it returns ctx's
// error.
func enterGate(ctx context.Context, b Backend, owner *checkpoint.Owner) (*gatePass, error) {
	key := gateKey(b)
	g := joinGate(key)
	if err := ctx.Err(); err != nil {
		gates.mu.Lock()
		leaveGate(key, g)
		gates.mu.Unlock()
		return nil, err
	}
	select {
	case g.slot <- struct{}{}:
	case <-ctx.Done():
		gates.mu.Lock()
		leaveGate(key, g)
		gates.mu.Unlock()
		return nil, ctx.Err()
	}
	return g.passed(key, owner), nil
}

// tryGate is enterGate for a writer that does not wait: when another writer
// of this process is past the gate, it returns nil and that writer's owner
// record (nil if it has not said yet).
func tryGate(b Backend, owner *checkpoint.Owner) (*gatePass, *checkpoint.Owner) {
	key := gateKey(b)
	g := joinGate(key)
	gates.mu.Lock()
	defer gates.mu.Unlock()
	select {
	case g.slot <- struct{}{}:
		p := &gatePass{key: key, g: g, owner: owner}
		g.holder = p
		return p, nil
	default:
	}
	var other *checkpoint.Owner
	if g.holder != nil {
		other = g.holder.owner
	}
	leaveGate(key, g)
	return nil, other
}

// passed records the writer that just put its token in g.
func (g *gate) passed(key string, owner *checkpoint.Owner) *gatePass {
	p := &gatePass{key: key, g: g, owner: owner}
	gates.mu.Lock()
	g.holder = p
	gates.mu.Unlock()
	return p
}

// leave lets the next writer of this process through. It does nothing on a
// nil pass, after a first call, or (but counting the writer out) once the
// pass was revoked.
func (p *gatePass) leave() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		gates.mu.Lock()
		defer gates.mu.Unlock()
		if p.g.holder == p {
			p.g.holder = nil
			<-p.g.slot
		}
		leaveGate(p.key, p.g)
	})
}

// revokeGate lets the next writer of this process through the gate of the
// session b stores when the writer past it is the owner of a lock that was
// just broken: that writer can no longer commit (its Commit fails with a
// Lost *LockedError), and those queued behind it would otherwise wait for
// it to notice.
func revokeGate(b Backend, broken *Lock) {
	if broken == nil || broken.Owner == nil {
		return
	}
	gates.mu.Lock()
	defer gates.mu.Unlock()
	g := gates.m[gateKey(b)]
	if g == nil || g.holder == nil || !sameOwner(g.holder.owner, broken.Owner) {
		return
	}
	g.holder = nil
	<-g.slot
}

func sameOwner(a, b *checkpoint.Owner) bool {
	return a != nil && b != nil && a.PID == b.PID && a.Host == b.Host &&
		a.Command == b.Command && a.Started.Equal(b.Started)
}
