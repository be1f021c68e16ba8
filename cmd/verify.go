package cmd

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newVerifyCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify [ID...]",
		Short: "Check every generation of the sessions named, or of all sessions",
		Long: `Read every kept generation of each session named (all sessions when none is)
in full and check it, and check the session's files. Each problem is printed
on stdout on its own line, "ID: KIND: PATH: DETAIL", where KIND is one of:

  corrupt      a generation fails its integrity check
  stale-lock   a session.next whose writer is gone (ckpt break-lock removes it)
  orphan       a file no ckpt operation leaves behind, such as the temporary
               file of a writer that crashed
  permissions  a file or directory that others than its owner can access
  unreadable   a session or generation that cannot be read (an I/O error,
               a planted symlink, ...)

A summary goes to stderr. verify changes nothing, and exits non-zero
whenever it reports a problem:

  0  no problem found
  1  a problem other than a corrupt checkpoint: unreadable, orphan,
     permissions, stale-lock
  6  a corrupt checkpoint (whatever else it found)

A session named that does not exist exits 3 (unless a checkpoint is
corrupt), an invalid id 2.`,
		Example: `  ckpt verify
  ckpt verify "$S" --json`,
		RunE: func(c *cobra.Command, args []string) error {
			r, err := a.repository(c.Context())
			if err != nil {
				return err
			}
			all := len(args) == 0
			if all {
				entries, err := r.List(c.Context(), repository.Filter{})
				if err != nil {
					return err
				}
				for _, e := range entries {
					args = append(args, e.ID)
				}
			}
			var (
				findings []finding
				errs     []error
				corrupt  int
			)
			for _, id := range args {
				var probs []storage.Problem
				s, err := r.Open(c.Context(), id)
				if err == nil {
					probs, err = s.Verify(c.Context())
				}
				var ce *checkpoint.CorruptError
				switch {
				case errors.Is(err, storage.ErrNotFound) && all:
					continue // removed while we verified
				case errors.Is(err, storage.ErrNotFound), errors.Is(err, repository.ErrInvalidID):
					errs = append(errs, err)
				case errors.As(err, &ce):
					probs = []storage.Problem{{Kind: storage.ProblemCorrupt, Detail: message(err)}}
				case err != nil:
					probs = []storage.Problem{{Kind: storage.ProblemUnreadable, Detail: message(err)}}
				}
				for _, p := range probs {
					findings = append(findings, finding{Session: id, Kind: p.Kind, Path: p.Path, Detail: p.Detail})
					if p.Kind == storage.ProblemCorrupt {
						corrupt++
					}
				}
			}
			if err := a.printFindings(findings); err != nil {
				return err
			}
			a.notice("verified %d sessions: %d problems, %d corrupt checkpoints", len(args)-len(errs), len(findings), corrupt)
			switch {
			case corrupt > 0:
				errs = append(errs, &checkpoint.CorruptError{Reason: fmt.Sprintf("%d corrupt checkpoints found", corrupt)})
			case len(findings) > 0:
				// Exit 1: a problem, though no checkpoint is lost.
				errs = append(errs, fmt.Errorf("%d problems found", len(findings)))
			}
			if len(errs) > 0 {
				return errorList(errs)
			}
			return nil
		},
	}
}
