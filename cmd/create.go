package cmd

import (
	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

func (a *app) newCreateCommand() *cobra.Command {
	var o repository.CreateOptions
	c := &cobra.Command{
		Use:   "create [--prefix P] [--title T] [--flag F]...",
		Short: "Create a new session and print its id",
		Long: `Create a new, empty session and print its id on stdout.

The id is the slug of --prefix (at most 40 characters, "session" if the prefix
has none) followed by '-' and 12 random characters. The session starts at
generation 0, with no checkpoint; 'ckpt save' makes generation 1.

--key (else $CKPT_KEY) records what the session runs for, such as a commit
id, so that 'ckpt last --key' finds the session of this commit and not one of
another.`,
		Example: `  S=$(ckpt create --prefix nightly --title "nightly $(date +%F)" --flag incomplete)
  S=$(ckpt last --prefix ci --key "$GITHUB_SHA" || ckpt create --prefix ci --key "$GITHUB_SHA")
  ckpt create --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if err := a.keyFlag(c, &o.Key); err != nil {
				return err
			}
			r, err := a.repository(c.Context())
			if err != nil {
				return err
			}
			d, err := r.Create(c.Context(), o)
			if err != nil {
				return err
			}
			if !a.json {
				_, err = c.OutOrStdout().Write([]byte(d.ID() + "\n"))
				return err
			}
			st, err := d.Stat(c.Context())
			if err != nil {
				return err
			}
			return a.printJSON(newSessionJSON(st))
		},
	}
	f := c.Flags()
	f.StringVar(&o.Prefix, "prefix", repository.DefaultPrefix, "first part of the id, slugged")
	f.StringVar(&o.Title, "title", "", "one-line description")
	f.StringVar(&o.App, "app", "", "id of the application that owns the payload format")
	f.StringArrayVar(&o.Flags, "flag", nil, "set a flag such as incomplete (repeatable)")
	f.StringVar(&o.Key, "key", "", "what the session runs for, such as a commit id; 'last --key' finds it (default $CKPT_KEY)")
	return c
}
