package storage

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// historyName is the file name of kept generation n: session.<n>.
func historyName(n uint64) string {
	return CheckpointFile + "." + strconv.FormatUint(n, 10)
}

// parseHistoryName returns the generation a history file name stands for.
func parseHistoryName(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, CheckpointFile+".")
	if !ok || s == "" || s[0] == '0' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// historyGenerations returns the generations kept as history files, newest
// first.
func (d *Dir) historyGenerations() ([]uint64, error) {
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	var gens []uint64
	for _, de := range des {
		if n, ok := parseHistoryName(de.Name()); ok {
			gens = append(gens, n)
		}
	}
	slices.SortFunc(gens, func(a, b uint64) int { return cmp.Compare(b, a) })
	return gens, nil
}

// History implements Session. It reads every kept generation in full.
func (d *Dir) History(ctx context.Context) ([]Generation, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	var out []Generation
	if g, ok := d.generation(CheckpointFile); ok {
		g.Current = true
		out = append(out, g)
	}
	gens, err := d.historyGenerations()
	if err != nil {
		return nil, err
	}
	for _, n := range gens {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if g, ok := d.generation(historyName(n)); ok {
			if g.Header == nil {
				g.Generation = n
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// generation verifies one checkpoint file; ok is false if it does not
// exist or holds generation 0 (no checkpoint).
func (d *Dir) generation(name string) (Generation, bool) {
	g := Generation{Path: d.file(name)}
	cp, err := d.loadFile(name)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrNoCheckpoint):
		return g, false
	case err == nil:
		cp.Close()
		g.Generation, g.Header, g.Size = cp.Header.Generation, cp.Header, cp.Size
		return g, true
	}
	g.Err = err
	// A damaged file may still have a readable header.
	if f, fi, oerr := d.openRegular(name); oerr == nil {
		if h, size, herr := d.readHeader(f, fi); herr == nil {
			g.Generation, g.Header, g.Size = h.Generation, h, size
		}
		f.Close()
	}
	return g, true
}

// Verify implements Session: every generation is read in full, the lock is
// judged, and the directory is checked for orphaned files and for
// permissions that let others in.
func (d *Dir) Verify(ctx context.Context) ([]Problem, error) {
	gens, err := d.History(ctx)
	if err != nil {
		return nil, err
	}
	var out []Problem
	for _, g := range gens {
		if g.Err != nil {
			out = append(out, Problem{Kind: ProblemCorrupt, Path: g.Path, Detail: g.Err.Error()})
		}
	}
	l, err := inspectLock(d.file(NextFile), d.now())
	if err != nil {
		return nil, fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	if l != nil && l.Stale {
		out = append(out, Problem{Kind: ProblemStaleLock, Path: d.file(NextFile), Detail: fmt.Sprintf("held by %s: %s", l.Owner, l.Reason)})
	}
	if fi, err := os.Lstat(d.path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		out = append(out, Problem{Kind: ProblemPermissions, Path: d.path, Detail: fmt.Sprintf("mode %#o, want %#o", fi.Mode().Perm(), dirPerm)})
	}
	des, err := os.ReadDir(d.path)
	if err != nil {
		return nil, fmt.Errorf("session %s: %w", d.id, err)
	}
	for _, de := range des {
		name := de.Name()
		path := d.file(name)
		_, isHistory := parseHistoryName(name)
		switch {
		case strings.HasPrefix(name, TempPrefix):
			if fi, err := de.Info(); err == nil && fi.ModTime().Before(d.now().Add(-CreateGrace)) && !lockHeld(path) {
				out = append(out, Problem{Kind: ProblemOrphan, Path: path, Detail: "temporary file of a writer that is gone"})
			}
			continue
		case name != CheckpointFile && name != NextFile && !isHistory && name != LogDir:
			out = append(out, Problem{Kind: ProblemOrphan, Path: path, Detail: "not a file ckpt writes"})
			continue
		}
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == 0 && fi.Mode().Perm()&0o077 != 0 {
			out = append(out, Problem{Kind: ProblemPermissions, Path: path, Detail: fmt.Sprintf("mode %#o, want %#o", fi.Mode().Perm(), filePerm)})
		}
	}
	return out, nil
}

// lockHeld reports whether some process holds an flock on the file at path.
func lockHeld(path string) bool {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	return unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB) != nil
}

// sweepOrphans removes temporary files left by writers that are gone: no
// flock held, and older than CreateGrace, so that a writer between its
// create and its flock keeps its file.
func (d *Dir) sweepOrphans() error {
	des, err := os.ReadDir(d.path)
	if err != nil {
		return err
	}
	cutoff := d.now().Add(-CreateGrace)
	var errs []error
	for _, de := range des {
		path := d.file(de.Name())
		if !strings.HasPrefix(de.Name(), TempPrefix) || lockHeld(path) {
			continue
		}
		if fi, err := de.Info(); err == nil && fi.ModTime().Before(cutoff) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Sweep implements Session: it removes a stale session.next and orphaned
// temporary files last modified before cutoff, and returns their paths.
// With dryRun it only returns them.
func (d *Dir) Sweep(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	var swept []string
	next := d.file(NextFile)
	l, err := inspectLock(next, d.now())
	if err != nil {
		return nil, fmt.Errorf("session %s: inspect lock: %w", d.id, err)
	}
	if l != nil && l.Stale && l.Since.Before(cutoff) {
		if !dryRun {
			if _, err := d.BreakLock(ctx, false); err != nil {
				return swept, err
			}
		}
		swept = append(swept, next)
	}
	des, err := os.ReadDir(d.path)
	if err != nil {
		return swept, fmt.Errorf("session %s: %w", d.id, err)
	}
	for _, de := range des {
		path := d.file(de.Name())
		if !strings.HasPrefix(de.Name(), TempPrefix) || lockHeld(path) {
			continue
		}
		if fi, err := de.Info(); err != nil || !fi.ModTime().Before(cutoff) {
			continue
		}
		if !dryRun {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return swept, fmt.Errorf("session %s: %w", d.id, err)
			}
		}
		swept = append(swept, path)
	}
	return swept, nil
}
