package cmd

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

type saveOptions struct {
	id string
	// file is the input, "" for stdin.
	file         string
	title, app   string
	flags        setFlags
	ifGeneration uint64
	allowEmpty   bool
	keep         int
	lock         lockFlags

	// opts are the save's options, from the flags above.
	opts            []storage.SaveOption
	ifGenerationSet bool
	// metadata names the metadata flags given, which a save inside
	// 'ckpt run' refuses.
	metadata []string
}

func (a *app) newSaveCommand() *cobra.Command {
	var o saveOptions
	c := &cobra.Command{
		Use:   "save [ID] [FILE|-] [--title T] [--set F]... [--clear F]...",
		Short: "Save a new checkpoint atomically and print its generation",
		Long: `Save the contents of FILE, or of stdin when FILE is '-' or absent, as the
session's next checkpoint, and print the new generation number. Without ID,
the session is $CKPT_SESSION: then use 'ckpt save - < FILE' or 'ckpt save',
since a single argument other than '-' is taken as the id.

The checkpoint is written to session.next, fsynced and renamed over the
current one: readers see the old checkpoint or the new one, never a mix.
While it writes, session.next is the session's lock: a second writer fails
with exit status 4, or with --wait waits for the first to finish (retrying
with jittered exponential backoff), and with --break-stale breaks the lock of
a writer that is provably gone (also $CKPT_BREAK_STALE=true; the flag beats
the variable). A live writer's lock is never broken. Title, flags and app id
carry over from the previous generation unless changed here: --set and
--clear set and clear flags, as 'ckpt mark' does.

An empty input is refused (exit 2) unless --allow-empty: an empty pipe usually
means the program producing the state failed. Note that a pipe cannot tell
ckpt whether its producer succeeded; where that matters, write the state to a
file first and save the file only if the producer exited 0.

A save that lasts more than a second shows its progress (bytes and rate) on
stderr when stderr is a terminal; --quiet hides it.`,
		Example: `  ./runner > state.json && ckpt save "$S" state.json
  ckpt save "$S" - --title "after step 3" --set incomplete < state.json
  G=$(ckpt show "$S" --json | jq .generation)
  ckpt save "$S" state.json --if-generation "$G"   # exit 5 if someone saved meanwhile
  ckpt save "$S" state.json --wait 30s --break-stale
  ckpt save "$S" state.json --clear incomplete --set done`,
		Args: usageArgs(cobra.MaximumNArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			o.opts = []storage.SaveOption{
				o.flags.option(),
				storage.WithCommand("ckpt save"),
			}
			if c.Flags().Changed("title") {
				o.opts = append(o.opts, storage.WithTitle(o.title))
			}
			if c.Flags().Changed("app") {
				o.opts = append(o.opts, storage.WithApp(o.app))
			}
			if c.Flags().Changed("if-generation") {
				o.opts = append(o.opts, storage.IfGeneration(o.ifGeneration))
				o.ifGenerationSet = true
			}
			keep, err := a.keep(c, o.keep)
			if err != nil {
				return err
			}
			o.opts = append(o.opts, storage.Keep(keep))
			if o.allowEmpty {
				o.opts = append(o.opts, storage.AllowEmpty())
			}
			for _, f := range []string{"title", "app", "set", "clear", "flag", "unflag", "keep"} {
				if c.Flags().Changed(f) {
					o.metadata = append(o.metadata, f)
				}
			}
			minRest := 0
			if len(args) == 2 || len(args) == 1 && args[0] == "-" {
				minRest = 1
			}
			id, rest, err := a.sessionArgs(args, minRest)
			if err != nil {
				return err
			}
			o.id = id
			if len(rest) == 1 && rest[0] != "-" {
				o.file = rest[0]
			}
			return a.runSave(c.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.title, "title", "", "set the title")
	f.StringVar(&o.app, "app", "", "set the application id")
	o.flags.register(c, "in the new generation", true)
	f.Uint64Var(&o.ifGeneration, "if-generation", 0, "save only if the current generation is `N` (else exit 5)")
	f.BoolVar(&o.allowEmpty, "allow-empty", false, "allow an empty payload")
	o.lock.register(c)
	f.IntVar(&o.keep, "keep", storage.DefaultKeep, "keep the last `K` payloads, this one included, each with its newest generation (default $CKPT_KEEP, else 3)")
	return c
}

// runSave saves the input as the session's next checkpoint, showing the
// progress of a long save on a terminal's stderr, and prints the new
// generation.
func (a *app) runSave(ctx context.Context, o saveOptions) error {
	in, size := a.io.In, int64(-1)
	if o.file != "" {
		f, err := os.Open(o.file)
		if err != nil {
			return fmt.Errorf("open input: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return usageError{fmt.Errorf("input %s is a directory, not a file", o.file)}
		} else if err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		in = f
	}
	// No meter while the user types the payload at the terminal.
	var m *meter
	if o.file != "" || !a.terminal(a.io.In) {
		m = a.startMeter("save: wait for the lock", -1)
	}
	defer m.end()
	in = m.reader(in, "save: commit")
	if t, err := a.txnFor(o.id); err != nil || t != nil {
		if err != nil {
			return err
		}
		m.pass("save", size)
		return a.saveInTxn(t, in, &o, m)
	}
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	var saved *storage.Saved
	err = a.waiter(s, &o.lock).Do(ctx, func() (err error) {
		m.pass("save", size)
		saved, err = s.Save(ctx, struct{ io.Reader }{in}, o.opts...)
		return err
	})
	m.end()
	if err != nil {
		return err
	}
	return a.printSaved(s.ID(), saved)
}

// saveInTxn is save inside 'ckpt run' on the same session: it replaces the
// transaction's payload, which the transaction commits when its command
// succeeds.
func (a *app) saveInTxn(t *txnFile, in io.Reader, o *saveOptions, m *meter) error {
	if len(o.metadata) > 0 {
		return usageError{fmt.Errorf("inside 'ckpt run', save replaces the payload only; pass --%s to ckpt run instead", o.metadata[0])}
	}
	if o.ifGenerationSet && o.ifGeneration != t.Base {
		return fmt.Errorf("session %s: %w: expected generation %d, the transaction started from %d", o.id, storage.ErrConflict, o.ifGeneration, t.Base)
	}
	err := t.save(o.id, in, o.allowEmpty)
	m.end()
	if err != nil {
		return err
	}
	fi, err := os.Stat(t.Next)
	if err != nil {
		return err
	}
	return a.printSaved(o.id, &storage.Saved{Header: &checkpoint.Header{Generation: t.Base + 1, Saved: fi.ModTime().UTC()}, Size: fi.Size()})
}
