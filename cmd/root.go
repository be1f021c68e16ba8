// Package cmd is ckpt's command line: cobra commands, one file each, the
// rendering of their output (output.go) and the one map from errors to exit
// statuses (exit.go).
package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/adrg/xdg"
	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// IO is where a run of ckpt reads and writes.
type IO struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Terminal reports whether stream, In, Out or Err, is a terminal, which
	// changes what ckpt writes there (a binary payload is refused, progress
	// is shown); nil asks the operating system.
	Terminal func(stream any) bool
}

// app holds what every command shares: I/O, the environment and the global
// flags.
type app struct {
	io     IO
	getenv func(string) string
	now    func() time.Time

	repoFlag string
	// lease, when set (ckpt queue --lease), is how long an S3 lease lasts.
	lease time.Duration
	json  bool
	quiet bool
	// meter is the progress meter on stderr, nil when none is drawn.
	meter *meter
}

// terminal reports whether stream is a terminal (see IO.Terminal).
func (a *app) terminal(stream any) bool {
	if a.io.Terminal != nil {
		return a.io.Terminal(stream)
	}
	return isTerminal(stream)
}

const rootLong = `ckpt keeps checkpointed test-run sessions on disk. A long run saves its state
after each step; when it is killed, rebooted or timed out, the next run
resumes from the last complete checkpoint. A checkpoint is written to
session.next, fsynced and renamed over the current one, so it is never torn.

The repository is --repo, else $CKPT_REPOSITORY, else
$XDG_CACHE_HOME/ckpt/sessions: a directory, or s3://BUCKET/PREFIX for
S3-compatible object storage (configured as the AWS SDK is: AWS_* variables
and shared config files; AWS_ENDPOINT_URL_S3 for another server).
$CKPT_S3_PATH_STYLE turns path-style addressing on or off (it is on by
default when an endpoint is configured: AWS_ENDPOINT_URL_S3,
AWS_ENDPOINT_URL or endpoint_url in the AWS config file),
and $CKPT_S3_LEASE sets how long an S3 writer's lease lasts unless renewed
(default 30s). Commands that take one session id use $CKPT_SESSION when the
id is left out. 'ckpt help environment' lists every variable ckpt reads or
sets.

EXIT STATUS
  0  success
  1  any other error (I/O, permission, ...), or a problem verify reported
  2  usage error: bad flag, bad argument, invalid session id, a bad
     CKPT_* value, s3:// without a bucket, a binary payload that load
     would write to a terminal
  3  not found: no such session, no checkpoint yet, no session matches
     (last), no such generation or log
  4  locked: another writer holds session.next (live or stale), another
     process runs the step, a --wait ran out, or this writer's lock or
     claim was broken under it
  5  conflict: --if-generation did not match the current generation
  6  corrupt: the checkpoint fails its integrity check and no intact
     generation is left (or verify found a corrupt one)

'ckpt step' and 'ckpt run' exit with their command's status once it ran.`

const rootExample = `  S=$(ckpt create --prefix nightly --title "nightly $(date +%F)")
  ./runner --step 1 > state.json && ckpt save "$S" state.json
  ckpt load "$S" > state.json
  ckpt list --prefix nightly`

// Main runs ckpt with args (without the program name) and returns its exit
// status.
func Main(args []string, stdio IO, getenv func(string) string) int {
	a := &app{io: stdio, getenv: getenv, now: time.Now}
	root := a.newRootCommand()
	if isCompletionRequest(args) {
		a.registerCompletions(root, args)
	}
	root.SetArgs(args)
	// SIGINT and SIGTERM cancel the context, so a save in progress removes
	// its session.next instead of leaving a lock behind. A second signal
	// kills as usual.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := root.ExecuteContext(ctx)
	if err != nil {
		a.reportError(err)
	}
	return exitCode(err)
}

// NewCommand returns ckpt's root command, with every verb and help topic,
// for programs that generate its documentation (internal/docgen). Main runs
// ckpt; a command from NewCommand is not meant to be executed.
func NewCommand(stdio IO, getenv func(string) string) *cobra.Command {
	a := &app{io: stdio, getenv: getenv, now: time.Now}
	return a.newRootCommand()
}

func (a *app) newRootCommand() *cobra.Command {
	var showVersion bool
	root := &cobra.Command{
		Use:               "ckpt",
		Short:             "Checkpointed test-run sessions that survive kills, reboots and timeouts",
		Long:              rootLong,
		Example:           rootExample,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error { return a.checkEnv(c) },
		Args:              usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			if showVersion {
				return a.printVersionLine()
			}
			return c.Help()
		},
	}
	// Defined here rather than through cobra's Version field, which would
	// take -v as well and read the build information on every run.
	root.Flags().BoolVar(&showVersion, "version", false, "print the version and the commit, and exit")
	root.SetIn(a.io.In)
	root.SetOut(a.io.Out)
	root.SetErr(a.io.Err)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&a.repoFlag, "repo", "", "repository: a directory or s3://BUCKET/PREFIX (default $CKPT_REPOSITORY, else $XDG_CACHE_HOME/ckpt/sessions)")
	pf.BoolVar(&a.json, "json", false, "print machine-readable JSON on stdout")
	pf.BoolVarP(&a.quiet, "quiet", "q", false, "print no notices, warnings or progress on stderr; errors still are")
	root.AddCommand(
		a.newCreateCommand(),
		a.newListCommand(),
		a.newSaveCommand(),
		a.newLoadCommand(),
		a.newShowCommand(),
		a.newRemoveCommand(),
		a.newBreakLockCommand(),
		a.newHistoryCommand(),
		a.newVerifyCommand(),
		a.newRunCommand(),
		a.newStepCommand(),
		a.newStepsCommand(),
		a.newLogsCommand(),
		a.newReportCommand(),
		a.newQueueCommand(),
		a.newWaitCommand(),
		a.newLastCommand(),
		a.newMarkCommand(),
		a.newGCCommand(),
		a.newVersionCommand(),
		newEnvironmentTopic(),
	)
	root.SetHelpCommand(a.newHelpCommand())
	return root
}

// cacheHome is $XDG_CACHE_HOME as the environment ckpt runs with says,
// else the XDG default (github.com/adrg/xdg).
func (a *app) cacheHome() string {
	if v := a.getenv("XDG_CACHE_HOME"); filepath.IsAbs(v) {
		return v
	}
	return xdg.CacheHome
}

// repoPath resolves the repository location: --repo, then $CKPT_REPOSITORY,
// then the XDG cache directory.
func (a *app) repoPath() (string, error) {
	p := a.repoFlag
	if p == "" {
		p = a.getenv("CKPT_REPOSITORY")
	}
	if p == "" {
		p = filepath.Join(a.cacheHome(), "ckpt", "sessions")
	}
	if s3store.IsURL(p) {
		return s3Root(p)
	}
	if len(p) >= 3 && strings.EqualFold(p[:3], "s3:") {
		// S3://, s3:/bucket: a mistyped URL, not a directory named so.
		return "", usageError{fmt.Errorf("%w: %q: want s3://BUCKET or s3://BUCKET/PREFIX, in lowercase (for a directory whose name starts with s3:, write ./%s)", errRepoURL, p, p)}
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", fmt.Errorf("repository path %q: %w", p, err)
	}
	return abs, nil
}

func (a *app) repository(ctx context.Context) (*repository.Repository, error) {
	p, err := a.repoPath()
	if err != nil {
		return nil, err
	}
	if s3store.IsURL(p) {
		o, err := a.s3Options()
		if err != nil {
			return nil, err
		}
		return repository.OpenS3(ctx, p, o)
	}
	return repository.Open(p)
}

// s3Options are the settings of an S3 repository that the AWS SDK's own
// configuration (AWS_* variables, shared config files) does not cover.
// Path-style addressing, which most S3-compatible servers need, is on when
// $CKPT_S3_PATH_STYLE is true (as strconv.ParseBool reads it), off when it
// is false, and when it is unset on exactly when the SDK's configuration
// names an endpoint, from any source (s3store.PathStyleAuto).
// $CKPT_S3_LEASE sets how long a writer's lease lasts unless renewed
// (default 30s): a writer killed outright holds its session that long. The
// SDK's warnings become "ckpt: warning: aws sdk: ..." lines.
func (a *app) s3Options() (s3store.Options, error) {
	o := s3store.Options{
		CheckCacheDir: filepath.Join(a.cacheHome(), "ckpt", "s3-checked"),
		Warn:          func(msg string) { a.warn("%s", msg) },
	}
	switch v, set, err := a.envBool("CKPT_S3_PATH_STYLE"); {
	case err != nil:
		return o, err
	case set && v:
		o.PathStyle = s3store.PathStyleOn
	case set:
		o.PathStyle = s3store.PathStyleOff
	}
	if d, set, err := a.envDuration("CKPT_S3_LEASE", time.Second); err != nil {
		return o, err
	} else if set {
		o.LeaseDuration = d
	}
	if a.lease > 0 {
		o.LeaseDuration = a.lease
	}
	return o, nil
}

// session opens one session of the repository by id.
func (a *app) session(ctx context.Context, id string) (*storage.Session, error) {
	r, err := a.repository(ctx)
	if err != nil {
		return nil, err
	}
	return r.Open(ctx, id)
}

// sessionArgs splits args into a session id and the rest: the id is the
// first argument when there are more than minRest, else $CKPT_SESSION.
func (a *app) sessionArgs(args []string, minRest int) (string, []string, error) {
	if len(args) > minRest {
		return args[0], args[1:], nil
	}
	if id := a.getenv("CKPT_SESSION"); id != "" {
		return id, args, nil
	}
	return "", nil, usageError{errors.New("no session id given, and $CKPT_SESSION is not set")}
}

// usageArgs marks errors from a cobra argument validator as usage errors.
func usageArgs(v cobra.PositionalArgs) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if err := v(c, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// maxKeep bounds --keep: a manifest names at most checkpoint.MaxKept kept
// generations besides itself.
const maxKeep = checkpoint.MaxKept + 1

// keep resolves how many payloads a save keeps: --keep, else
// $CKPT_KEEP, else storage.DefaultKeep.
func (a *app) keep(c *cobra.Command, flag int) (int, error) {
	if !c.Flags().Changed("keep") {
		env := a.getenv("CKPT_KEEP")
		if env == "" {
			return storage.DefaultKeep, nil
		}
		n, err := strconv.Atoi(env)
		if err != nil || n < 1 || n > maxKeep {
			return 0, usageError{fmt.Errorf("CKPT_KEEP=%q: want a whole number of payloads from 1 to %d", env, maxKeep)}
		}
		return n, nil
	}
	if flag < 1 || flag > maxKeep {
		return 0, usageError{fmt.Errorf("--keep %d: want 1 (the new generation itself) to %d", flag, maxKeep)}
	}
	return flag, nil
}
