package cmd

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

type saveOptions struct {
	title, app   string
	flags        setFlags
	ifGeneration uint64
	allowEmpty   bool
	keep         int
	lock         lockFlags
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
file first and save the file only if the producer exited 0.`,
		Example: `  ./runner > state.json && ckpt save "$S" state.json
  ckpt save "$S" - --title "after step 3" --set incomplete < state.json
  G=$(ckpt show "$S" --json | jq .generation)
  ckpt save "$S" state.json --if-generation "$G"   # exit 5 if someone saved meanwhile
  ckpt save "$S" state.json --wait 30s --break-stale
  ckpt save "$S" state.json --clear incomplete --set done`,
		Args: usageArgs(cobra.MaximumNArgs(2)),
		RunE: func(c *cobra.Command, args []string) error {
			opts := []storage.SaveOption{
				o.flags.option(),
				storage.WithCommand("ckpt save"),
			}
			if c.Flags().Changed("title") {
				opts = append(opts, storage.WithTitle(o.title))
			}
			if c.Flags().Changed("app") {
				opts = append(opts, storage.WithApp(o.app))
			}
			if c.Flags().Changed("if-generation") {
				opts = append(opts, storage.IfGeneration(o.ifGeneration))
			}
			keep, err := a.keep(c, o.keep)
			if err != nil {
				return err
			}
			opts = append(opts, storage.Keep(keep))
			if o.allowEmpty {
				opts = append(opts, storage.AllowEmpty())
			}
			minRest := 0
			if len(args) == 2 || len(args) == 1 && args[0] == "-" {
				minRest = 1
			}
			id, rest, err := a.sessionArgs(args, minRest)
			if err != nil {
				return err
			}
			in := c.InOrStdin()
			if len(rest) == 1 && rest[0] != "-" {
				f, err := os.Open(rest[0])
				if err != nil {
					return fmt.Errorf("open input: %w", err)
				}
				defer f.Close()
				if fi, err := f.Stat(); err == nil && fi.IsDir() {
					return usageError{fmt.Errorf("input %s is a directory, not a file", rest[0])}
				}
				in = f
			}
			if t, err := a.txnFor(id); err != nil || t != nil {
				if err != nil {
					return err
				}
				return a.saveInTxn(c, t, id, in, &o)
			}
			s, err := a.session(c.Context(), id)
			if err != nil {
				return err
			}
			var saved *storage.Saved
			err = a.waiter(s, &o.lock).Do(c.Context(), func() (err error) {
				saved, err = s.Save(c.Context(), struct{ io.Reader }{in}, opts...)
				return err
			})
			if err != nil {
				return err
			}
			if a.json {
				return a.printJSON(savedJSON{ID: s.ID(), Generation: saved.Header.Generation, Saved: saved.Header.Saved, Size: saved.Size})
			}
			_, err = fmt.Fprintln(c.OutOrStdout(), saved.Header.Generation)
			return err
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

// saveInTxn is save inside 'ckpt run' on the same session: it replaces the
// transaction's payload, which the transaction commits when its command
// succeeds.
func (a *app) saveInTxn(c *cobra.Command, t *txnFile, id string, in io.Reader, o *saveOptions) error {
	for _, f := range []string{"title", "app", "set", "clear", "flag", "unflag", "keep"} {
		if c.Flags().Changed(f) {
			return usageError{fmt.Errorf("inside 'ckpt run', save replaces the payload only; pass --%s to ckpt run instead", f)}
		}
	}
	if c.Flags().Changed("if-generation") && o.ifGeneration != t.Base {
		return fmt.Errorf("session %s: %w: expected generation %d, the transaction started from %d", id, storage.ErrConflict, o.ifGeneration, t.Base)
	}
	if err := t.save(id, in, o.allowEmpty); err != nil {
		return err
	}
	if a.json {
		fi, err := os.Stat(t.Next)
		if err != nil {
			return err
		}
		return a.printJSON(savedJSON{ID: id, Generation: t.Base + 1, Saved: fi.ModTime().UTC(), Size: fi.Size()})
	}
	_, err := fmt.Fprintln(c.OutOrStdout(), t.Base+1)
	return err
}
