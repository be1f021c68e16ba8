package cmd

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newLastCommand() *cobra.Command {
	var o lastOptions
	c := &cobra.Command{
		Use:   "last [--prefix P] [--flag F]... [--no-flag F]... [--key K] [--or-create [--title T]]",
		Short: "Print the id of the youngest session that matches",
		Long: `Print the id of the youngest session (by last save) that has the prefix,
every --flag and none of the --no-flag flags: the session a resumed run picks
up. Exit status 3 when none matches, so that a script can fall back to
'ckpt create'.

With --or-create, when none matches, it creates a session with the same
prefix, --flag flags and key (and --title) and prints its id instead, exit 0
and nothing on stderr: the first line of a job that resumes its session or
starts one. Any other error still fails; two jobs that start at the same
moment each create one.

A damaged session is skipped, with a warning on stderr, never fatal: its age
cannot be read, so it might have been the youngest. --json prints the whole
session object, as 'ckpt show --json' does.`,
		Example: `  S=$(ckpt last --prefix nightly --flag incomplete --key "$GITHUB_SHA" --or-create --title "nightly $(date +%F)")
  S=$(ckpt last --prefix nightly --flag incomplete || ckpt create --prefix nightly --flag incomplete)
  ckpt last --no-flag submitted
  ckpt last --json | jq .generation`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := validFlags(slices.Concat(o.filter.Flags, o.filter.NoFlags)); err != nil {
				return err
			}
			if c.Flags().Changed("title") && !o.orCreate {
				return usageError{errors.New("--title goes with --or-create")}
			}
			if err := a.keyFlag(c, &o.filter.Key); err != nil {
				return err
			}
			return a.runLast(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.filter.Prefix, "prefix", "", "only sessions created with this prefix")
	f.StringArrayVar(&o.filter.Flags, "flag", nil, "only sessions with this flag set (repeatable)")
	f.StringArrayVar(&o.filter.NoFlags, "no-flag", nil, "only sessions without this flag (repeatable)")
	f.StringVar(&o.filter.Key, "key", "", "only sessions created with exactly this `KEY`, such as a commit id (default $CKPT_KEY)")
	f.BoolVar(&o.orCreate, "or-create", false, "when none matches, create one with this prefix, flags and key, and print its id")
	f.StringVar(&o.title, "title", "", "with --or-create, the new session's title")
	return c
}

type lastOptions struct {
	filter repository.Filter
	// orCreate creates a session, titled title, when none matches.
	orCreate bool
	title    string
}

// runLast prints the youngest session that matches, or the one it creates
// with orCreate.
func (a *app) runLast(ctx context.Context, o lastOptions) error {
	f := o.filter
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	st, damaged, err := r.Last(ctx, f)
	a.warnDamaged(damaged)
	if errors.Is(err, repository.ErrNoMatch) && o.orCreate {
		s, cerr := r.Create(ctx, repository.CreateOptions{Prefix: f.Prefix, Title: o.title, Flags: f.Flags, Key: f.Key})
		if cerr != nil {
			return cerr
		}
		st, err = s.Stat(ctx)
	}
	if err != nil {
		return fmt.Errorf("%w%s", err, describeFilter(f))
	}
	if a.json {
		s, err := r.Open(ctx, st.ID)
		if err != nil {
			return err
		}
		if st, err = s.Stat(ctx, storage.WithSteps()); err != nil {
			return err
		}
	}
	return a.printLast(st)
}

// keyFlag resolves a --key flag: the flag, else $CKPT_KEY; a usage error
// for a key too long to store.
func (a *app) keyFlag(c *cobra.Command, key *string) error {
	if !c.Flags().Changed("key") {
		*key = a.getenv("CKPT_KEY")
	}
	return validKey(*key)
}

// validKey returns a usage error unless k can be stored as a key.
func validKey(k string) error {
	if err := (checkpoint.Identity{Key: k}).Validate(); err != nil {
		return usageError{fmt.Errorf("--key: %w", err)}
	}
	return nil
}

// validFlags returns a usage error unless every flag is a valid one: a flag
// that cannot be set cannot match either.
func validFlags(flags []string) error {
	for _, fl := range flags {
		if !checkpoint.ValidFlag(fl) {
			return usageError{fmt.Errorf("invalid flag %q: flags are lowercase letters, digits, '-', '_' and '.', at most %d characters", fl, checkpoint.MaxFlagLen)}
		}
	}
	return nil
}

// describeFilter renders f as the flags that asked for it.
func describeFilter(f repository.Filter) string {
	var b strings.Builder
	if f.Prefix != "" {
		fmt.Fprintf(&b, " --prefix %s", repository.Slug(f.Prefix))
	}
	for _, fl := range f.Flags {
		fmt.Fprintf(&b, " --flag %s", fl)
	}
	for _, fl := range f.NoFlags {
		fmt.Fprintf(&b, " --no-flag %s", fl)
	}
	if f.Key != "" {
		fmt.Fprintf(&b, " --key %s", strconv.Quote(f.Key))
	}
	return b.String()
}
