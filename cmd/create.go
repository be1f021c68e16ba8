package cmd

import (
	"context"
	"slices"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newCreateCommand() *cobra.Command {
	var (
		o           repository.CreateOptions
		set, oldSet []string
	)
	c := &cobra.Command{
		Use:   "create [--prefix P] [--title T] [--set F]... [--key K]",
		Short: "Create a new session and print its id",
		Long: `Create a new, empty session and print its id on stdout.

The id is the slug of --prefix (at most 40 characters, "session" if the prefix
has none) followed by '-' and 12 random characters. The session starts at
generation 0, with no checkpoint; 'ckpt save' makes generation 1. --set sets
its first flags, as 'ckpt mark --set' and 'ckpt save --set' do later.

--key (else $CKPT_KEY) records what the session runs for, such as a commit
id, so that 'ckpt last --key' finds the session of this commit and not one of
another.`,
		Example: `  S=$(ckpt create --prefix nightly --title "nightly $(date +%F)" --set incomplete)
  S=$(ckpt last --prefix ci --key "$GITHUB_SHA" || ckpt create --prefix ci --key "$GITHUB_SHA")
  ckpt create --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := a.keyFlag(c, &o.Key); err != nil {
				return err
			}
			o.Flags = slices.Concat(set, oldSet)
			return a.runCreate(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Prefix, "prefix", repository.DefaultPrefix, "first part of the id, slugged")
	f.StringVar(&o.Title, "title", "", "one-line description")
	f.StringVar(&o.App, "app", "", "id of the application that owns the payload format")
	f.StringArrayVar(&set, "set", nil, "set flag `F`, such as incomplete (repeatable)")
	// --flag is the older name of --set, hidden and working as before;
	// bound apart so that --set a --flag b keeps both.
	f.StringArrayVar(&oldSet, "flag", nil, "deprecated: use --set")
	_ = f.MarkHidden("flag")
	f.StringVar(&o.Key, "key", "", "what the session runs for, such as a commit id; 'last --key' finds it (default $CKPT_KEY)")
	return c
}

// runCreate creates a session and prints its id, or all of it with --json.
func (a *app) runCreate(ctx context.Context, o repository.CreateOptions) error {
	r, err := a.repository(ctx)
	if err != nil {
		return err
	}
	s, err := r.Create(ctx, o)
	if err != nil {
		return err
	}
	var st *storage.Status
	if a.json {
		if st, err = s.Stat(ctx, storage.WithSteps()); err != nil {
			return err
		}
	}
	return a.printCreated(s.ID(), st)
}
