package repository

import (
	"context"
	"errors"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Finding is one problem Verify found in a session.
type Finding struct {
	Session string
	storage.Problem
}

// Report is what Verify found.
type Report struct {
	// Verified is how many sessions were read (named ones that do not
	// exist, or are invalid ids, are not).
	Verified int
	// Findings are the problems, session by session, in the order asked.
	Findings []Finding
	// Corrupt counts the findings of kind storage.ProblemCorrupt.
	Corrupt int
	// Errs holds, for each id that names no session (storage.ErrNotFound)
	// or is invalid (ErrInvalidID), why.
	Errs []error
}

// Verify reads every kept generation of the sessions ids names, of every
// session when ids is empty, and checks it and the session's files (see
// storage.Session.Verify). A session that cannot be opened, or whose
// verification fails outright, is a finding too: of kind
// storage.ProblemCorrupt when it fails an integrity check, else
// storage.ProblemUnreadable. A session removed while Verify listed all of
// them is left out. The error is for a listing that failed.
func (r *Repository) Verify(ctx context.Context, ids []string) (*Report, error) {
	all := len(ids) == 0
	if all {
		entries, err := r.List(ctx, Filter{})
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			ids = append(ids, e.ID)
		}
	}
	rep := &Report{}
	for _, id := range ids {
		var probs []storage.Problem
		s, err := r.Open(ctx, id)
		if err == nil {
			probs, err = s.Verify(ctx)
		}
		var ce *checkpoint.CorruptError
		switch {
		case errors.Is(err, storage.ErrNotFound) && all:
			continue // removed while we verified
		case errors.Is(err, storage.ErrNotFound), errors.Is(err, ErrInvalidID):
			rep.Errs = append(rep.Errs, err)
			continue
		case errors.As(err, &ce):
			probs = []storage.Problem{{Kind: storage.ProblemCorrupt, Detail: err.Error()}}
		case err != nil:
			probs = []storage.Problem{{Kind: storage.ProblemUnreadable, Detail: err.Error()}}
		}
		rep.Verified++
		for _, p := range probs {
			rep.Findings = append(rep.Findings, Finding{Session: id, Problem: p})
			if p.Kind == storage.ProblemCorrupt {
				rep.Corrupt++
			}
		}
	}
	return rep, nil
}
