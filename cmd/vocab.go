package cmd

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// One vocabulary for every verb: durations are written one way (Go's, plus
// days), booleans from the environment are read as strconv.ParseBool reads
// them, and a flag given on the command line beats its variable.

// setFlags are the flags of a verb that writes metadata: --set and --clear
// change the session's flags (on list, last and gc, --flag and --no-flag
// filter by them). save and run also take --flag and --unflag, their older
// names, hidden from the help and working as before.
type setFlags struct {
	set, clear       []string
	oldSet, oldClear []string
}

// register defines --set and --clear on c, and with old their older names;
// where says which generation they change.
func (f *setFlags) register(c *cobra.Command, where string, old bool) {
	fs := c.Flags()
	if where != "" {
		where = " " + where
	}
	fs.StringArrayVar(&f.set, "set", nil, "set flag `F`"+where+" (repeatable)")
	fs.StringArrayVar(&f.clear, "clear", nil, "clear flag `F`"+where+" (repeatable)")
	if old {
		// Bound apart: two flags over one slice would each replace it on
		// first use, and --set a --flag b would lose a.
		fs.StringArrayVar(&f.oldSet, "flag", nil, "deprecated: use --set")
		fs.StringArrayVar(&f.oldClear, "unflag", nil, "deprecated: use --clear")
		_ = fs.MarkHidden("flag")
		_ = fs.MarkHidden("unflag")
	}
}

// option returns the save option that sets and clears the flags asked for.
func (f *setFlags) option() storage.SaveOption {
	return storage.WithFlags(slices.Concat(f.set, f.oldSet), slices.Concat(f.clear, f.oldClear))
}

// parseDuration is time.ParseDuration with days: a leading "Nd" (N may have
// a fraction) counts N times 24 hours, as in 7d or 1d12h. It refuses
// durations that are not positive.
func parseDuration(s string) (time.Duration, error) {
	d, err := parseDurationOrZero(s)
	if err == nil && d == 0 || strings.HasPrefix(s, "-") {
		return 0, errors.New("want a duration greater than zero")
	}
	return d, err
}

// parseDurationOrZero is parseDuration that also takes a zero duration
// ("0", "0s"), which turns off what the duration bounds, such as a wait.
func parseDurationOrZero(s string) (time.Duration, error) {
	invalid := errors.New("invalid duration: want a number and a unit (s, m, h, d), such as 90m, 36h or 7d")
	switch {
	case s == "":
		return 0, invalid
	case strings.HasPrefix(s, "-"):
		return 0, errors.New("a duration cannot be negative")
	}
	var d time.Duration
	rest := s
	if days, after, ok := strings.Cut(s, "d"); ok {
		if days == "" || strings.Trim(days, "0123456789.") != "" {
			return 0, invalid
		}
		n, err := strconv.ParseFloat(days, 64)
		if err != nil {
			return 0, invalid
		}
		if n*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, errors.New("duration too long")
		}
		d, rest = time.Duration(n*float64(24*time.Hour)), after
	}
	if rest != "" {
		if rest[0] == '-' || rest[0] == '+' {
			return 0, invalid
		}
		more, err := time.ParseDuration(rest)
		if err != nil {
			return 0, invalid
		}
		if more > math.MaxInt64-d {
			return 0, errors.New("duration too long")
		}
		d += more
	}
	return d, nil
}

// durationValue is a pflag.Value for a duration flag in parseDuration's
// grammar. Zero, the default, is allowed; a negative duration is refused
// while the flags are parsed, which makes it a usage error.
type durationValue time.Duration

// durationVar defines a duration flag in parseDuration's grammar, as
// pflag's DurationVar defines one in time.ParseDuration's.
func durationVar(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var((*durationValue)(p), name, usage)
}

func (d *durationValue) Set(s string) error {
	v, err := parseDurationOrZero(s)
	if err != nil {
		return err
	}
	*d = durationValue(v)
	return nil
}

func (d *durationValue) Type() string { return "duration" }

func (d *durationValue) String() string {
	if *d == 0 {
		return "0" // what pflag takes for a default not worth showing
	}
	return time.Duration(*d).String()
}

// envBool reads the boolean variable name as strconv.ParseBool does (1, t,
// true, 0, f, false, ...). set is false when the variable is unset or
// empty; any other value is a usage error that names the variable.
func (a *app) envBool(name string) (v, set bool, err error) {
	s := a.getenv(name)
	if s == "" {
		return false, false, nil
	}
	v, err = strconv.ParseBool(s)
	if err != nil {
		return false, false, usageError{fmt.Errorf("%s=%q: want true or false (or 1 or 0)", name, s)}
	}
	return v, true, nil
}

// envDuration reads the duration variable name in parseDuration's grammar.
// set is false when the variable is unset or empty; a value that is not a
// duration of at least min is a usage error that names the variable.
func (a *app) envDuration(name string, min time.Duration) (d time.Duration, set bool, err error) {
	s := a.getenv(name)
	if s == "" {
		return 0, false, nil
	}
	d, err = parseDuration(s)
	if err != nil || d < min {
		return 0, false, usageError{fmt.Errorf("%s=%q: want a duration of at least %s, such as 30s, 10m or 1d", name, s, min)}
	}
	return d, true, nil
}

// envFlagBool resolves a boolean flag that a variable also sets: the flag
// when it was given on the command line (--break-stale=false beats
// CKPT_BREAK_STALE=1), else the variable, else false.
func (a *app) envFlagBool(fs *pflag.FlagSet, flag, env string) (bool, error) {
	if f := fs.Lookup(flag); f != nil && f.Changed {
		return strconv.ParseBool(f.Value.String())
	}
	v, _, err := a.envBool(env)
	return v, err
}

// checkEnv checks, before a command runs, the variables that stand in for
// its flags, so that a bad value is a usage error even for a verb that reads
// it only halfway through: $CKPT_BREAK_STALE for every verb with
// --break-stale, unless --break-stale was given.
func (a *app) checkEnv(c *cobra.Command) error {
	if c.Flags().Lookup("break-stale") != nil {
		if _, err := a.envFlagBool(c.Flags(), "break-stale", "CKPT_BREAK_STALE"); err != nil {
			return err
		}
	}
	return nil
}

// errRepoURL marks an s3:// repository location that names no bucket or
// has an unusable prefix.
var errRepoURL = errors.New("invalid s3:// repository")

// s3Root checks the s3:// repository location p and returns it without
// trailing slashes. A location without a bucket (s3://, s3:///x) is a usage
// error, never taken for a local path.
func s3Root(p string) (string, error) {
	if _, _, err := s3store.ParseURL(p); err != nil {
		return "", usageError{fmt.Errorf("%w: %v", errRepoURL, err)}
	}
	return strings.TrimRight(p, "/"), nil
}
