package storage

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// dirTx is the Tx of a Dir.
type dirTx struct {
	d        *Dir
	c        *SaveConfig
	w        *writer
	base     *checkpoint.Header
	baseFile io.ReadCloser // the current checkpoint, open, with KeepPayload
	next     *checkpoint.Header
	saved    *Saved
	done     bool
}

var _ Tx = (*dirTx)(nil)

// Begin takes the session's lock and returns a transaction that will save
// the next generation with opts. It fails at once with a *LockedError if
// another writer holds the lock; wrap it in a Waiter to wait. With
// IfGeneration, the generation is checked here, under the lock.
//
// The caller must end the transaction with Commit or Abort; until then
// other writers get a live *LockedError.
func (d *Dir) Begin(ctx context.Context, opts ...SaveOption) (Tx, error) {
	tx, err := d.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return tx, nil
}

// Lock is Begin for a caller that wants the lock held while it works: it
// returns the transaction and the function that releases the lock. Calling
// the function after Commit does nothing.
func (d *Dir) Lock(ctx context.Context, opts ...SaveOption) (Tx, func() error, error) {
	tx, err := d.begin(ctx, NewSaveConfig(opts))
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
func (d *Dir) Run(ctx context.Context, fn func(ctx context.Context, tx Tx) error, opts ...SaveOption) (*Saved, error) {
	tx, err := d.begin(ctx, NewSaveConfig(opts))
	if err != nil {
		return nil, err
	}
	defer tx.Abort()
	if err := fn(ctx, tx); err != nil {
		return nil, err
	}
	return tx.saved, nil
}

// The header, which names the owner, must be in session.next from the moment
// it exists, but its generation depends on the current checkpoint, which can
// only be trusted under the lock. So begin reads the current header, takes
// the lock with a header built from it, and reads again under the lock; if
// another writer committed in between, it lets go and starts over.
func (d *Dir) begin(ctx context.Context, c *SaveConfig) (*dirTx, error) {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		seen, _, err := d.current()
		if err != nil {
			return nil, err
		}
		tx, err := d.beginFrom(c, seen)
		if !errors.Is(err, errMoved) {
			return tx, err
		}
		if attempt == maxBeginAttempts {
			return nil, fmt.Errorf("session %s: other writers kept saving; gave up after %d attempts", d.id, attempt)
		}
	}
}

const maxBeginAttempts = 16

// errMoved means the current checkpoint changed between begin's first look
// and its lock.
var errMoved = errors.New("current checkpoint changed")

func (d *Dir) beginFrom(c *SaveConfig, seen *checkpoint.Header) (_ *dirTx, err error) {
	h, err := c.NextHeader(seen, CurrentOwner(c.Command, c.Now()))
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	w, err := d.lock(h)
	if err != nil {
		return nil, err
	}
	tx := &dirTx{d: d, c: c, w: w, next: h}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Abort())
		}
	}()
	tx.base, tx.baseFile, err = d.currentForUpdate(c)
	if err != nil {
		return nil, err
	}
	if !sameHeader(tx.base, seen) {
		return nil, errMoved
	}
	var gen uint64
	if tx.base != nil {
		gen = tx.base.Generation
	}
	switch {
	case c.Init && tx.base != nil:
		return nil, fmt.Errorf("session %s: already initialized", d.id)
	case c.IfGeneration != nil && *c.IfGeneration != gen:
		return nil, fmt.Errorf("session %s: %w: expected generation %d, the current one is %d", d.id, ErrConflict, *c.IfGeneration, gen)
	case c.KeepPayload && tx.base == nil:
		return nil, fmt.Errorf("session %s: %w", d.id, ErrNoCheckpoint)
	}
	return tx, nil
}

// Base implements Tx.
func (tx *dirTx) Base() *checkpoint.Header { return tx.base }

// Next implements Tx.
func (tx *dirTx) Next() *checkpoint.Header { return tx.next }

// Load implements Tx.
func (tx *dirTx) Load(ctx context.Context) (*Checkpoint, error) {
	return tx.d.loadFile(CheckpointFile)
}

// Commit implements Tx.
func (tx *dirTx) Commit(ctx context.Context, payload io.Reader) (saved *Saved, err error) {
	if tx.done {
		return nil, errors.New("transaction already ended")
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, tx.Abort())
		}
	}()
	c := tx.c
	if c.KeepPayload {
		payload = tx.baseFile
	}
	size, err := tx.w.write(ctx, payload, c.Init || c.AllowEmpty || c.KeepPayload)
	if err != nil {
		return nil, err
	}
	// Rotating history changes the session: only the lock's holder may.
	if err := tx.w.stillOurs(); err != nil {
		return nil, err
	}
	if err := tx.d.rotate(tx.base, tx.next.Generation, c.Keep); err != nil {
		return nil, err
	}
	if err := tx.w.commit(); err != nil {
		return nil, err
	}
	tx.done = true
	tx.closeBase()
	tx.saved = &Saved{Header: tx.next, Size: size}
	return tx.saved, nil
}

// Abort implements Tx.
func (tx *dirTx) Abort() error {
	if tx.done {
		return nil
	}
	tx.done = true
	tx.closeBase()
	return tx.w.abort()
}

func (tx *dirTx) closeBase() {
	if tx.baseFile != nil {
		tx.baseFile.Close()
		tx.baseFile = nil
	}
}

func sameHeader(a, b *checkpoint.Header) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Generation == b.Generation && a.Saved.Equal(b.Saved)
}
