package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newMarkCommand() *cobra.Command {
	var (
		o     markOptions
		title string
	)
	c := &cobra.Command{
		Use:   "mark [ID] [--set F]... [--clear F]... [--title T]",
		Short: "Change a session's flags or title, keeping its payload",
		Long: `Set and clear flags, or change the title, without touching the payload: the
new generation names the current payload, which is neither read nor copied,
and 'ckpt mark' prints its number. Without ID, the session is $CKPT_SESSION.

Like a save, it takes the session's lock (exit 4 while another writer holds
it, unless --wait; --break-stale, or $CKPT_BREAK_STALE=true, breaks the lock
of a writer that is gone), keeps history as a save does and resets the
session's idle time for 'ckpt gc'. Marking a session that was never saved
makes a new generation that still has no checkpoint to load.

--set and --clear change flags here and in 'ckpt create', 'save' and 'run';
--flag and --no-flag select sessions by them in 'ckpt list', 'last' and 'gc'.`,
		Example: `  ckpt mark "$S" --clear incomplete --set done
  ckpt mark --set submitted --title "nightly 2026-11-22, submitted"
  ckpt mark "$S" --json`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			o.id = id
			if o.keep, err = a.keep(c, 0); err != nil {
				return err
			}
			if c.Flags().Changed("title") {
				o.title = &title
			}
			if err := o.lock.resolve(a); err != nil {
				return err
			}
			return a.runMark(c.Context(), o)
		},
	}
	f := c.Flags()
	o.flags.register(c, "", false)
	f.StringVar(&title, "title", "", "set the title")
	o.lock.register(c)
	return c
}

type markOptions struct {
	id    string
	title *string // nil: keep the title
	flags setFlags
	keep  int
	lock  lockFlags
}

// runMark saves a generation of the session that changes its metadata
// only, and prints its number.
func (a *app) runMark(ctx context.Context, o markOptions) error {
	opts := []storage.SaveOption{
		storage.KeepPayload(),
		o.flags.option(),
		storage.WithCommand("ckpt mark"),
		storage.Keep(o.keep),
	}
	if o.title != nil {
		opts = append(opts, storage.WithTitle(*o.title))
	}
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	var saved *storage.Saved
	err = a.waiter(s, &o.lock).Do(ctx, func() (err error) {
		saved, err = s.Save(ctx, nil, opts...)
		return err
	})
	if err != nil {
		return err
	}
	return a.printSaved(s.ID(), saved)
}
