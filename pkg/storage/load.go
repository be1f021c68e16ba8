package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// headProbe is how much of a manifest the first read asks for: a manifest
// is a few hundred bytes, and a longer header costs a second read.
const headProbe = 4 << 10

// manifest is one generation's manifest as read from the backend.
type manifest struct {
	name string
	h    *checkpoint.Header
	info ObjectInfo
	// raw is the whole format-2 manifest, nil for a format-1 file.
	raw []byte
	// inline is, for a format-1 file, the offset of the payload inside it.
	inline int64
}

// hasPayload reports whether the generation has a payload to load.
func (m *manifest) hasPayload() bool {
	return m.h.Generation > 0 && !m.h.NoPayload && (m.h.Format == 1 || m.h.Payload != nil)
}

// size returns the payload size.
func (m *manifest) size() int64 {
	switch {
	case !m.hasPayload():
		return 0
	case m.h.Format == 1:
		return max(m.info.Size-m.inline-checkpoint.TrailerSize, 0)
	}
	return m.h.Payload.Size
}

// payloadKey names the bytes the generation's payload lives in: its
// payload object, or for a format-1 file the file itself.
func (m *manifest) payloadKey() string {
	switch {
	case !m.hasPayload():
		return ""
	case m.h.Format == 1:
		return m.name
	}
	return m.h.Payload.Object
}

// readManifest reads and checks the manifest (or format-1 header) of object
// name. A missing object wraps fs.ErrNotExist; a damaged one is a
// *checkpoint.CorruptError.
func (s *Session) readManifest(ctx context.Context, name string) (*manifest, error) {
	b, info, err := s.b.ReadHead(ctx, name, headProbe)
	if err != nil {
		return nil, s.errorf("%s: %w", s.path(name), err)
	}
	if n, herr := checkpoint.HeaderLen(b); herr == nil && n > int64(len(b)) && info.Size >= n {
		if b, info, err = s.b.ReadHead(ctx, name, n); err != nil {
			return nil, s.errorf("%s: %w", s.path(name), err)
		}
	}
	h, off, err := checkpoint.ReadHeader(bytes.NewReader(b))
	if err != nil {
		return nil, s.errorf("%s: %w", s.path(name), err)
	}
	m := &manifest{name: name, h: h, info: info}
	switch h.Format {
	case 1:
		m.inline = off
		if info.Size < off+checkpoint.TrailerSize {
			return nil, s.errorf("%s: %w", s.path(name), &checkpoint.CorruptError{Reason: "truncated: the trailer is missing"})
		}
	default:
		if info.Size != off {
			return nil, s.errorf("%s: %w", s.path(name), &checkpoint.CorruptError{Reason: fmt.Sprintf("manifest is %d bytes long, its header says %d", info.Size, off)})
		}
		m.raw = b[:off]
	}
	return m, nil
}

// openPayload returns the payload of m, verified before any byte of it is
// handed out: a format-2 payload object against the manifest's size and
// SHA-256, a format-1 file against its trailer.
func (s *Session) openPayload(ctx context.Context, m *manifest) (*Checkpoint, error) {
	return s.openPayloadInto(ctx, m, &LoadConfig{})
}

// openPayloadInto is openPayload as c asks: given a spool file and a backend
// that downloads objects to read them, it downloads a format-2 payload into
// c.Spool; it tells c.Progress how much of the payload it verified.
func (s *Session) openPayloadInto(ctx context.Context, m *manifest, c *LoadConfig) (*Checkpoint, error) {
	spool := c.Spool
	if !m.hasPayload() {
		return nil, s.errorf("%w", ErrNoCheckpoint)
	}
	if c.Progress != nil {
		ctx = context.WithValue(ctx, progressKey{}, c.Progress)
	}
	key := m.payloadKey()
	var (
		obj     Object
		err     error
		spooled bool
	)
	switch sp, ok := s.b.(Spooler); {
	case ok && spool != nil && m.h.Format != 1:
		obj, err = sp.OpenInto(ctx, key, spool)
		spooled = true
	case spool != nil:
		// An earlier attempt may have downloaded into it: a Checkpoint
		// that is not Spooled leaves the file empty.
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return nil, s.errorf("spool: %w", err)
		}
		if err := spool.Truncate(0); err != nil {
			return nil, s.errorf("spool: %w", err)
		}
		fallthrough
	default:
		obj, err = s.b.Open(ctx, key)
	}
	if errors.Is(err, fs.ErrNotExist) && m.h.Format != 1 {
		return nil, s.errorf("%s: %w", s.path(m.name), &checkpoint.CorruptError{Reason: fmt.Sprintf("its payload %s is missing", key)})
	}
	if err != nil {
		return nil, s.errorf("%s: %w", s.path(key), err)
	}
	off, size := int64(0), m.size()
	var verified io.ReaderAt = obj
	if c.Progress != nil {
		c.Progress(Progress{Pass: PassVerify, Total: size})
		verified = &progressReaderAt{r: obj, total: size, report: c.Progress}
	}
	if m.h.Format == 1 {
		info, verr := checkpoint.Verify(verified, obj.Size())
		switch {
		case verr != nil:
			err = verr
		case info.Header.Generation != m.h.Generation || !info.Header.Saved.Equal(m.h.Saved):
			err = errMoved
		default:
			off, size = info.PayloadOffset, info.PayloadSize
		}
	} else {
		err = checkpoint.VerifyPayload(verified, obj.Size(), m.h.Payload)
	}
	if err != nil {
		obj.Close()
		if errors.Is(err, errMoved) {
			return nil, err
		}
		return nil, s.errorf("%s: %w", s.path(m.name), err)
	}
	return &Checkpoint{
		Header:  m.h,
		Size:    size,
		Spooled: spooled,
		ReadCloser: struct {
			io.Reader
			io.Closer
		}{io.NewSectionReader(obj, off, size), obj},
	}, nil
}

// progressReaderAt tells report how far one pass over r, reading it in
// order from its start, has come.
type progressReaderAt struct {
	r      io.ReaderAt
	total  int64
	done   int64
	report func(Progress)
}

func (p *progressReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := p.r.ReadAt(b, off)
	if end := off + int64(n); end > p.done {
		p.done = end
		p.report(Progress{Pass: PassVerify, Done: min(end, p.total), Total: p.total})
	}
	return n, err
}

// errMoved means that what a reader looked at changed under it: a writer
// committed, and may have pruned what the reader's manifest named.
var errMoved = errors.New("the session changed while it was read")

// maxReadAttempts bounds how often a read starts over because writers kept
// committing under it.
const maxReadAttempts = 8

// Load returns the current checkpoint, verified before any byte of it is
// handed out; when it is damaged, the newest intact older generation,
// naming the damaged ones in Checkpoint.Skipped (see LoadOption). The
// caller must close it.
func (s *Session) Load(ctx context.Context, opts ...LoadOption) (*Checkpoint, error) {
	c := NewLoadConfig(opts)
	for attempt := 1; ; attempt++ {
		cp, err := s.load(ctx, c)
		if !errors.Is(err, errMoved) && !s.movedSince(ctx, err) {
			return cp, err
		}
		if attempt == maxReadAttempts {
			return nil, s.errorf("other writers kept saving while it was read; gave up after %d attempts", attempt)
		}
	}
}

// lastSeen records the version of "session" a failed read started from, so
// that the caller can tell a damaged session from one that moved on.
type readError struct {
	err  error
	base ObjectInfo
}

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// movedSince reports whether err is a read error on a manifest that is no
// longer current: the read should start over.
func (s *Session) movedSince(ctx context.Context, err error) bool {
	var re *readError
	if !errors.As(err, &re) {
		return false
	}
	_, info, herr := s.b.ReadHead(ctx, CheckpointFile, 1)
	return herr == nil && info.Version != re.base.Version
}

func (s *Session) load(ctx context.Context, c *LoadConfig) (*Checkpoint, error) {
	if c.Generation != nil {
		return s.loadGeneration(ctx, *c.Generation, c)
	}
	cur, err := s.readManifest(ctx, CheckpointFile)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.b.Check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("%w", ErrNoCheckpoint)
	}
	var cp *Checkpoint
	if err == nil {
		if cp, err = s.openPayloadInto(ctx, cur, c); err == nil || errors.Is(err, errMoved) {
			return cp, err
		}
	}
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) {
		return nil, err
	}
	var base ObjectInfo
	if cur != nil {
		base = cur.info
		// A writer that committed since the manifest was read may have
		// pruned what it named, or (format 1) replaced the file: that is
		// no damage, and the read starts over.
		if _, info, herr := s.b.ReadHead(ctx, CheckpointFile, 1); herr == nil && info.Version != base.Version {
			return nil, errMoved
		}
	} else if _, info, herr := s.b.ReadHead(ctx, CheckpointFile, 1); herr == nil {
		base = info
	}
	if c.Strict {
		return nil, &readError{err: err, base: base}
	}
	cp, ferr := s.fallback(ctx, cur, err, c)
	if ferr != nil {
		return nil, &readError{err: ferr, base: base}
	}
	return cp, nil
}

// fallback returns the newest intact kept generation older than the damaged
// current one; first is why the current one failed.
func (s *Session) fallback(ctx context.Context, cur *manifest, first error, c *LoadConfig) (*Checkpoint, error) {
	gens, err := s.keptGenerations(ctx, cur)
	if err != nil {
		return nil, errors.Join(first, err)
	}
	skipped := []error{first}
	for _, g := range gens {
		m, err := s.readManifest(ctx, historyName(g))
		if errors.Is(err, fs.ErrNotExist) {
			continue // pruned while we looked
		}
		if err == nil {
			var cp *Checkpoint
			if cp, err = s.openPayloadInto(ctx, m, c); err == nil {
				cp.Skipped = skipped
				return cp, nil
			}
		}
		if errors.Is(err, ErrNoCheckpoint) {
			break // this and older generations hold no payload
		}
		skipped = append(skipped, err)
	}
	if len(skipped) == 1 {
		return nil, first
	}
	return nil, s.errorf("no intact generation left: %w", errors.Join(skipped...))
}

// keptGenerations returns the generations kept as history, newest first:
// those the current manifest names, or, when it cannot be read or is a
// format-1 file, every session.<n> object listed.
func (s *Session) keptGenerations(ctx context.Context, cur *manifest) ([]uint64, error) {
	if cur != nil && cur.h.Format != 1 {
		gens := make([]uint64, len(cur.h.Kept))
		for i, k := range cur.h.Kept {
			gens[i] = k.Generation
		}
		return gens, nil
	}
	return s.listHistory(ctx)
}

// listHistory returns the generations of every session.<n> object, newest
// first.
func (s *Session) listHistory(ctx context.Context) ([]uint64, error) {
	objs, err := s.b.List(ctx)
	if err != nil {
		return nil, s.errorf("list: %w", err)
	}
	var gens []uint64
	for _, o := range objs {
		if n, ok := parseHistoryName(o.Name); ok {
			gens = append(gens, n)
		}
	}
	sortNewestFirst(gens)
	return gens, nil
}

// loadGeneration loads generation n, current or kept.
func (s *Session) loadGeneration(ctx context.Context, n uint64, c *LoadConfig) (*Checkpoint, error) {
	cur, err := s.readManifest(ctx, CheckpointFile)
	if err == nil && cur.h.Generation == n && n > 0 {
		return s.openPayloadInto(ctx, cur, c)
	}
	m, err := s.readManifest(ctx, historyName(n))
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.b.Check(ctx); err != nil {
			return nil, err
		}
		return nil, s.errorf("generation %d: %w", n, ErrNoGeneration)
	}
	if err != nil {
		return nil, err
	}
	if m.h.Generation != n {
		return nil, s.errorf("%s: %w", s.path(m.name), &checkpoint.CorruptError{Reason: fmt.Sprintf("holds generation %d, not %d", m.h.Generation, n)})
	}
	return s.openPayloadInto(ctx, m, c)
}
