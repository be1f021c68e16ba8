package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

type runOptions struct {
	id         string
	argv       []string // CMD [ARGS...]
	lock       lockFlags
	retryFor   time.Duration
	title      *string // nil: keep the title
	flags      setFlags
	keep       int
	allowEmpty bool
}

func (a *app) newRunCommand() *cobra.Command {
	var (
		o     runOptions
		title string
	)
	c := &cobra.Command{
		Use:   "run [ID] [--wait D] [--retry-for D] [--title T] [--set F]... [--clear F]... -- CMD [ARGS...]",
		Short: "Run a command as a transaction on a session",
		Long: `Take the session's lock, run CMD while holding it, and commit what CMD wrote
as the next generation: a read-modify-write that no other writer can come
between. CMD runs with these in its environment:

  CKPT_SESSION     the session id
  CKPT_CHECKPOINT  a file holding the current payload (empty if none)
  CKPT_NEXT        where CMD writes the new payload (it does not exist yet)
  CKPT_REPOSITORY  the repository
  CKPT_TXN         the transaction, for the ckpt commands CMD runs

If CMD exits 0 and wrote CKPT_NEXT, its contents are committed and the new
generation is printed. If CMD exits 0 without writing it, nothing changes and
the current generation is printed. If CMD fails, or SIGINT or SIGTERM arrives
(it is passed on to CMD), the transaction is aborted, the checkpoint is left
as it was, and ckpt exits with CMD's status.

Inside CMD, 'ckpt load' and 'ckpt save' on the same session read and write
the transaction's files instead of waiting for the lock ckpt run holds; other
sessions behave as usual.

--title, --set and --clear change the new generation's title and flags, as
'ckpt mark' does. --wait waits for another writer to finish before starting.
--retry-for runs CMD again, up to that long, when the transaction's lock was
broken under it by someone else before it could commit; never after CMD
itself failed. Durations are a number and a unit (s, m, h, d): 30s, 10m,
1d12h.`,
		Example: `  ckpt run "$S" -- sh -c 'expr "$(cat "$CKPT_CHECKPOINT" || echo 0)" + 1 > "$CKPT_NEXT"'
  ckpt run "$S" --wait 1m -- ./update-state.sh
  ckpt run "$S" --set done --clear incomplete -- ./finish.sh
  ckpt run "$S" -- sh -c 'ckpt load | ./step > new && ckpt save - < new'`,
		Args: usageArgs(func(c *cobra.Command, args []string) error {
			if c.ArgsLenAtDash() < 0 || c.ArgsLenAtDash() == len(args) {
				return errors.New("missing the command to run: ckpt run [ID] -- CMD [ARGS...]")
			}
			if c.ArgsLenAtDash() > 1 {
				return fmt.Errorf("too many arguments before --: %q", args[:c.ArgsLenAtDash()])
			}
			return nil
		}),
		RunE: func(c *cobra.Command, args []string) error {
			dash := c.ArgsLenAtDash()
			id, _, err := a.sessionArgs(args[:dash], 0)
			if err != nil {
				return err
			}
			o.id, o.argv = id, args[dash:]
			if o.keep, err = a.keep(c, o.keep); err != nil {
				return err
			}
			if c.Flags().Changed("title") {
				o.title = &title
			}
			if err := o.lock.resolve(a); err != nil {
				return err
			}
			return a.runTxn(c.Context(), o)
		},
	}
	f := c.Flags()
	o.lock.register(c)
	durationVar(f, &o.retryFor, "retry-for", 0, "run CMD again for up to `DURATION` (30s, 10m, 1d) if the lock is broken under it")
	f.StringVar(&title, "title", "", "set the title of the new generation")
	o.flags.register(c, "in the new generation", true)
	f.IntVar(&o.keep, "keep", storage.DefaultKeep, "keep the last `K` payloads, each with its newest generation (default $CKPT_KEEP, else 3)")
	f.BoolVar(&o.allowEmpty, "allow-empty", false, "allow CMD to commit an empty payload")
	return c
}

// runTxn runs CMD as a transaction on the session, again while its lock
// is broken under it within o.retryFor, and prints the generation it
// leaves.
func (a *app) runTxn(ctx context.Context, o runOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	repo, err := a.repoPath()
	if err != nil {
		return err
	}
	opts := []storage.SaveOption{
		o.flags.option(),
		storage.WithCommand("ckpt run"),
		storage.Keep(o.keep),
	}
	if o.title != nil {
		opts = append(opts, storage.WithTitle(*o.title))
	}
	if o.allowEmpty {
		opts = append(opts, storage.AllowEmpty())
	}
	// Registered before the lock is taken, so that a signal aborts the
	// transaction rather than kill ckpt with the lock held.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	retryUntil := time.Now().Add(o.retryFor)
	for {
		var tx *storage.Tx
		err := a.waiter(s, &o.lock).Do(ctx, func() (err error) {
			tx, err = s.Begin(ctx, opts...)
			return err
		})
		if err != nil {
			return err
		}
		saved, err := a.runOnce(ctx, tx, repo, o.id, o.argv, sigs)
		var le *storage.LockedError
		if errors.As(err, &le) && le.Lost && time.Now().Before(retryUntil) {
			a.notice("the transaction's lock was broken before it could commit; running %s again", o.argv[0])
			continue
		}
		if err != nil {
			return err
		}
		if saved == nil {
			a.notice("%s wrote nothing to $CKPT_NEXT; nothing changed", o.argv[0])
			if base := tx.Base(); base != nil {
				saved = &storage.Saved{Header: base}
			}
		}
		return a.printCommitted(o.id, saved)
	}
}

// runOnce runs argv in the transaction tx and commits or aborts it. It
// returns what was committed, nil for an empty transaction.
func (a *app) runOnce(ctx context.Context, tx *storage.Tx, repo, id string, argv []string, sigs <-chan os.Signal) (saved *storage.Saved, err error) {
	defer func() {
		if saved == nil {
			err = errors.Join(err, tx.Abort())
		}
	}()
	dir, err := os.MkdirTemp("", "ckpt-run-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	t := &txnFile{Session: sessionLocation(repo, id), Checkpoint: filepath.Join(dir, "checkpoint"), Next: filepath.Join(dir, "next")}
	if base := tx.Base(); base != nil {
		t.Base = base.Generation
	}
	if err := copyBase(ctx, tx, t.Checkpoint); err != nil {
		return nil, err
	}
	if err := writeTxn(dir, t); err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(),
		"CKPT_SESSION="+id,
		"CKPT_REPOSITORY="+repo,
		"CKPT_CHECKPOINT="+t.Checkpoint,
		"CKPT_NEXT="+t.Next,
		envTxn+"="+dir,
	)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.io.In, a.io.Out, a.io.Err
	code, sig, err := a.runChild(cmd, sigs)
	switch {
	case err != nil:
		return nil, exitStatus{code: 127, err: fmt.Errorf("run %s: %w; the transaction was aborted", argv[0], err)}
	case sig != nil || ctx.Err() != nil:
		if code == 0 {
			code = 130
		}
		return nil, exitStatus{code: code, err: fmt.Errorf("interrupted; the transaction was aborted, nothing was saved")}
	case code != 0:
		return nil, exitStatus{code: code, err: fmt.Errorf("%s exited with status %d; the transaction was aborted, nothing was saved", argv[0], code)}
	}
	next, err := os.OpenFile(t.Next, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read $CKPT_NEXT: %w", err)
	}
	defer next.Close()
	return tx.Commit(ctx, next)
}

// copyBase writes the transaction's current payload to path; an empty file
// if there is none yet.
func copyBase(ctx context.Context, tx *storage.Tx, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	// A session never saved, even after step or mark records (NoPayload),
	// gives CMD an empty file.
	if base := tx.Base(); base != nil && base.Generation > 0 && !base.NoPayload {
		cp, err := tx.Load(ctx)
		if err != nil {
			f.Close()
			return err
		}
		defer cp.Close()
		if _, err := io.Copy(f, cp); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}
