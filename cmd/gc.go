package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

func (a *app) newGCCommand() *cobra.Command {
	var (
		o         repository.GCOptions
		olderThan string
	)
	c := &cobra.Command{
		Use:   "gc --older-than DURATION [--flag F]... [--no-flag F]... [--key K] [--dry-run]",
		Short: "Remove sessions idle for longer than a duration",
		Long: `Remove every session whose last save is older than DURATION (with --flag,
only those with all of these flags set; with --no-flag, only those with none
of these), and sweep what crashed processes
left behind, when older than DURATION: stale session.next locks, orphaned
temporary files, and half-removed sessions.

A session with a live writer is kept and reported ("kept ID: reason"). A
damaged session is never removed: it is reported on stderr, gc carries on
with the others, and exits 1 at the end. Sessions created while gc runs are
not touched: they are younger than DURATION.

DURATION is a number with a unit: s, m, h or d (days), such as 90m, 36h, 7d
or 1d12h. Each line on stdout says what gc did: "removed ID", "swept PATH",
"kept ID: reason"; with --dry-run nothing is changed and the lines say "would
remove ID" and "would sweep PATH".`,
		Example: `  ckpt gc --older-than 7d
  ckpt gc --older-than 36h --flag done --dry-run
  ckpt gc --older-than 7d --no-flag keep
  ckpt gc --older-than 30d --json | jq -r '.removed[]'`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if !c.Flags().Changed("older-than") {
				return usageError{errors.New("--older-than is required, for example: ckpt gc --older-than 7d")}
			}
			d, err := parseDuration(olderThan)
			if err != nil {
				return usageError{fmt.Errorf("--older-than %s: %w", olderThan, err)}
			}
			o.OlderThan = d
			if err := validFlags(slices.Concat(o.Flags, o.NoFlags)); err != nil {
				return err
			}
			if err := validKey(o.Key); err != nil {
				return err
			}
			return a.runGC(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&olderThan, "older-than", "", "remove sessions whose last save is older than `DURATION` (90m, 36h, 7d)")
	f.StringArrayVar(&o.Flags, "flag", nil, "only remove sessions with this flag set (repeatable)")
	f.StringArrayVar(&o.NoFlags, "no-flag", nil, "only remove sessions without this flag (repeatable)")
	f.StringVar(&o.Key, "key", "", "only remove sessions created with exactly this `KEY`")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be removed, and remove nothing")
	return c
}

// runGC removes the sessions o selects and sweeps what crashed processes
// left, or with o.DryRun says what it would do. Whatever fails is reported
// at the end, after what gc did.
func (a *app) runGC(ctx context.Context, o repository.GCOptions) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	res, err := r.GC(ctx, o)
	if res == nil {
		return err
	}
	errs := append([]error(nil), res.Errors...)
	if err != nil {
		errs = append(errs, err)
	}
	if perr := a.printGC(res, o.DryRun); perr != nil {
		errs = append(errs, perr)
	}
	if len(errs) > 0 {
		// Each is reported; whatever they are, gc did the rest.
		return exitStatus{code: exitError, err: errorList(errs)}
	}
	return nil
}
