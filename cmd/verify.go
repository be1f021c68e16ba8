package cmd

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
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
			return a.runVerify(c.Context(), verifyOptions{ids: args})
		},
	}
}

type verifyOptions struct {
	ids []string // none: every session
}

// runVerify verifies sessions and prints what it found; its error carries
// the exit status verify documents.
func (a *app) runVerify(ctx context.Context, o verifyOptions) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	rep, err := r.Verify(ctx, o.ids)
	if err != nil {
		return err
	}
	if err := a.printVerify(rep); err != nil {
		return err
	}
	errs := rep.Errs
	switch {
	case rep.Corrupt > 0:
		errs = append(errs, &checkpoint.CorruptError{Reason: "verify found " + plural(rep.Corrupt, "corrupt generation")})
	case len(rep.Findings) > 0:
		// Exit 1: a problem, though no checkpoint is lost.
		errs = append(errs, fmt.Errorf("verify found %s", plural(len(rep.Findings), "problem")))
	}
	if len(errs) > 0 {
		return errorList(errs)
	}
	return nil
}
