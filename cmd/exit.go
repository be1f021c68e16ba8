package cmd

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// Exit statuses, as documented in the root command's help and the README.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitNotFound = 3
	exitLocked   = 4
	exitConflict = 5
	exitCorrupt  = 6
)

// errorList holds the failures of a command that carries on past errors,
// such as remove. Each is reported on its own line.
type errorList []error

func (l errorList) Error() string { return errors.Join(l...).Error() }

func (l errorList) Unwrap() []error { return l }

// usageError marks an error as the user's: a bad flag or argument.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitStatus makes ckpt exit with a status of its own, such as that of the
// command 'ckpt step' ran. With a nil err nothing is reported: the command
// has spoken for itself.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e exitStatus) Unwrap() error { return e.err }

// exitCode is the one map from errors to exit statuses. The order of the
// cases decides which status wins when errors are joined.
func exitCode(err error) int {
	var (
		locked  *storage.LockedError
		corrupt *checkpoint.CorruptError
		usage   usageError
		status  exitStatus
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &status):
		return status.code
	case errors.As(err, &usage), errors.Is(err, repository.ErrInvalidID),
		errors.Is(err, checkpoint.ErrInvalid), errors.Is(err, storage.ErrEmpty):
		return exitUsage
	case errors.As(err, &corrupt):
		return exitCorrupt
	case errors.As(err, &locked):
		return exitLocked
	case errors.Is(err, storage.ErrConflict):
		return exitConflict
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrNoCheckpoint),
		errors.Is(err, storage.ErrNoGeneration), errors.Is(err, storage.ErrNoLog),
		errors.Is(err, repository.ErrNoMatch):
		return exitNotFound
	default:
		return exitError
	}
}

// reportError prints err on stderr as "ckpt: ..." lines, one per joined
// error, each followed by the hints that apply to it.
func (a *app) reportError(err error) {
	if s, ok := err.(exitStatus); ok {
		if s.err == nil {
			return
		}
		err = s.err
	}
	errs := []error{err}
	if l, ok := err.(errorList); ok {
		errs = l
	}
	for _, e := range errs {
		a.printError(message(e), a.hints(e))
	}
}

func message(err error) string {
	msg := err.Error()
	if errors.Is(err, context.Canceled) {
		msg = "interrupted; nothing was saved"
	}
	// One line per error: a wrapped multi-line error must not break the
	// "ckpt: " prefix rule, and text an error quotes from a session (an
	// owner's command line, a file name) must not reach the terminal raw.
	return printable(strings.ReplaceAll(msg, "\n", "; "))
}

// s3Endpoint says where the AWS SDK takes the S3 endpoint from.
const s3Endpoint = "$AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL or endpoint_url in the AWS config file"

// hints returns what the user can do about err.
func (a *app) hints(err error) []string {
	var (
		locked  *storage.LockedError
		corrupt *checkpoint.CorruptError
		version *checkpoint.VersionError
		usage   usageError
	)
	switch {
	case errors.As(err, &locked) && locked.Step != "" && !locked.Lost:
		return []string{fmt.Sprintf("another process runs step %s: wait for it with --wait, or if it hangs, stop it and run 'ckpt break-lock %s --step %s --force'", locked.Step, locked.Session, shellQuote([]string{locked.Step}))}
	case errors.As(err, &locked) && locked.Lost && strings.Contains(locked.Reason, "already ended by another process"):
		return []string{"this run's claim was broken and another runner took the step over; its result is theirs"}
	case errors.As(err, &locked) && locked.Stale:
		return []string{fmt.Sprintf("its writer is gone; run 'ckpt break-lock %s' (or pass --break-stale), then try again", locked.Session)}
	case errors.As(err, &locked) && locked.Owner != nil:
		return []string{fmt.Sprintf("wait for the writer to finish; if it hangs, stop it, then run 'ckpt break-lock %s'", locked.Session)}
	case errors.As(err, &locked) && locked.Lost:
		return []string{"someone ran 'ckpt break-lock --force' on this save and another writer saved since; load the session again and redo this save"}
	case errors.As(err, &locked):
		return []string{"another writer took the lock; try again"}
	case errors.Is(err, storage.ErrConflict):
		return []string{"another process saved in between: load the session again and retry with its generation"}
	case errors.As(err, &corrupt):
		return []string{"damaged files are left in place for inspection; 'ckpt history ID' shows which generations are intact"}
	case errors.Is(err, storage.ErrNoGeneration):
		return []string{"'ckpt history ID' lists the generations kept"}
	case errors.As(err, &version):
		return []string{"this session was written by a newer ckpt; upgrade ckpt to read it"}
	case errors.Is(err, repository.ErrInvalidID):
		return []string{"session ids are what 'ckpt create' printed, for example nightly-abcdefghijkl"}
	case errors.Is(err, storage.ErrNotFound):
		p, _ := a.repoPath()
		return []string{fmt.Sprintf("'ckpt list' shows the sessions in %s", p)}
	case errors.Is(err, storage.ErrNoCheckpoint):
		return []string{"save one first with: ckpt save ID FILE"}
	case errors.Is(err, storage.ErrNoLog):
		return []string{"'ckpt steps ID' lists the steps that ran; only 'ckpt step' keeps a log"}
	case errors.Is(err, repository.ErrNoMatch):
		p, _ := a.repoPath()
		return []string{fmt.Sprintf("'ckpt list' shows the sessions in %s; 'ckpt create' makes a new one", p)}
	case errors.Is(err, exec.ErrNotFound):
		return []string{"check that the command is installed and on $PATH, or give its path"}
	case errors.Is(err, storage.ErrEmpty):
		return []string{"the input was empty, which usually means its producer failed; pass --allow-empty to save it anyway"}
	case errors.Is(err, s3store.ErrNoBucket):
		return []string{"check the bucket in --repo or $CKPT_REPOSITORY (s3://BUCKET/PREFIX), and $AWS_REGION"}
	case errors.Is(err, s3store.ErrAccess):
		return []string{"check the credentials ($AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY, or $AWS_PROFILE): they may be wrong or have expired"}
	case errors.Is(err, s3store.ErrResolve):
		return []string{"check the host name of the endpoint (" + s3Endpoint + ") and this machine's DNS"}
	case errors.Is(err, s3store.ErrRefused):
		return []string{"nothing listens there: check that the server runs, and the host and port of the endpoint (" + s3Endpoint + ")"}
	case errors.Is(err, s3store.ErrTLS):
		return []string{"check the endpoint's scheme, http:// or https:// (" + s3Endpoint + "), and that this machine trusts the server's certificate ($AWS_CA_BUNDLE)"}
	case errors.Is(err, s3store.ErrTimeout):
		return []string{"the server did not answer in time, retries included; check the endpoint (" + s3Endpoint + ") and the network, then try again"}
	case errors.Is(err, s3store.ErrUnavailable):
		return []string{"the server kept failing, retries included; try again later, and if it persists check the endpoint (" + s3Endpoint + ") and the network"}
	case errors.Is(err, errBinaryTerminal):
		return []string{"redirect stdout to a file or a pipe, pass -o FILE, or pass -o - to write it to the terminal anyway"}
	case errors.Is(err, errRepoURL):
		return []string{"an S3 repository is s3://BUCKET or s3://BUCKET/PREFIX, in --repo or $CKPT_REPOSITORY"}
	case errors.Is(err, s3store.ErrNoConditionalWrites):
		return []string{"ckpt's locks need a server that enforces If-None-Match and If-Match (AWS S3 does); use another server or a local repository"}
	case errors.As(err, &usage):
		return []string{"run 'ckpt --help' or 'ckpt COMMAND --help' for usage"}
	}
	return nil
}
