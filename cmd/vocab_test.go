package cmd

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Every duration flag takes the grammar of --older-than, days included, and
// zero; none takes a negative duration.
func TestDurationFlag(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"0", 0},
		{"0s", 0},
		{"0d", 0},
		{"30s", 30 * time.Second},
		{"1d", 24 * time.Hour},
		{"1d12h", 36 * time.Hour},
		{"2d", 48 * time.Hour},
		{"1.5h", 90 * time.Minute},
	}
	for _, tt := range good {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		durationVar(fs, &d, "wait", 0, "")
		if err := fs.Parse([]string{"--wait", tt.in}); err != nil || d != tt.want {
			t.Errorf("--wait %s: %v, %v; want %v", tt.in, d, err, tt.want)
		}
	}
	for _, in := range []string{"-5s", "-1d", "-0s", "", "5", "1w", "d", "1d-1h", "7days"} {
		var d time.Duration
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		durationVar(fs, &d, "wait", 0, "")
		if err := fs.Parse([]string{"--wait=" + in}); err == nil {
			t.Errorf("--wait %q accepted as %v", in, d)
		}
	}
	var d time.Duration
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	durationVar(fs, &d, "wait", 0, "wait up to `DURATION`")
	if got := fs.FlagUsages(); got != "      --wait DURATION   wait up to DURATION\n" {
		t.Errorf("usage %q shows a default, or not the placeholder", got)
	}
}

func TestParseDurationNegative(t *testing.T) {
	for _, in := range []string{"-5s", "-1d"} {
		if _, err := parseDuration(in); err == nil || err.Error() != "want a duration greater than zero" {
			t.Errorf("parseDuration(%q) = %v, want: want a duration greater than zero", in, err)
		}
		if _, err := parseDurationOrZero(in); err == nil {
			t.Errorf("parseDurationOrZero(%q) accepted a negative duration", in)
		}
	}
}

func envApp(env map[string]string) *app {
	return &app{getenv: func(k string) string { return env[k] }}
}

func TestEnvBool(t *testing.T) {
	for _, tt := range []struct {
		val       string
		want, set bool
	}{
		{"", false, false},
		{"1", true, true},
		{"true", true, true},
		{"TRUE", true, true},
		{"t", true, true},
		{"0", false, true},
		{"false", false, true},
		{"F", false, true},
	} {
		v, set, err := envApp(map[string]string{"CKPT_X": tt.val}).envBool("CKPT_X")
		if err != nil || v != tt.want || set != tt.set {
			t.Errorf("CKPT_X=%q: %v, %v, %v; want %v, %v", tt.val, v, set, err, tt.want, tt.set)
		}
	}
	for _, val := range []string{"yes", "on", "2", " 1", "enabled"} {
		_, _, err := envApp(map[string]string{"CKPT_S3_PATH_STYLE": val}).envBool("CKPT_S3_PATH_STYLE")
		var usage usageError
		if !errors.As(err, &usage) || exitCode(err) != exitUsage {
			t.Errorf("CKPT_S3_PATH_STYLE=%q: %v, want a usage error", val, err)
		} else if want := `CKPT_S3_PATH_STYLE="` + val + `": want true or false (or 1 or 0)`; err.Error() != want {
			t.Errorf("CKPT_S3_PATH_STYLE=%q: %q, want %q", val, err, want)
		}
	}
}

func TestEnvDuration(t *testing.T) {
	for _, tt := range []struct {
		val  string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"1d", 24 * time.Hour, true},
		{"1m30s", 90 * time.Second, true},
		{"1s", time.Second, true},
		{"500ms", 0, false},
		{"-5s", 0, false},
		{"0", 0, false},
		{"soon", 0, false},
	} {
		d, set, err := envApp(map[string]string{"CKPT_S3_LEASE": tt.val}).envDuration("CKPT_S3_LEASE", time.Second)
		switch {
		case tt.ok && (err != nil || !set || d != tt.want):
			t.Errorf("CKPT_S3_LEASE=%q: %v, %v, %v; want %v", tt.val, d, set, err, tt.want)
		case !tt.ok && exitCode(err) != exitUsage:
			t.Errorf("CKPT_S3_LEASE=%q: %v, %v; want a usage error", tt.val, d, err)
		}
	}
	if _, set, err := envApp(nil).envDuration("CKPT_S3_LEASE", time.Second); set || err != nil {
		t.Errorf("unset CKPT_S3_LEASE: set %v, %v", set, err)
	}
}

// --break-stale on the command line, true or false, beats
// $CKPT_BREAK_STALE; the variable decides only when the flag is not given,
// and any value ParseBool refuses is a usage error, also through checkEnv.
func TestBreakStaleFlagBeatsVariable(t *testing.T) {
	for _, tt := range []struct {
		env  string
		args []string
		want bool
		bad  bool
	}{
		{"", nil, false, false},
		{"1", nil, true, false},
		{"true", nil, true, false},
		{"0", nil, false, false},
		{"1", []string{"--break-stale=false"}, false, false},
		{"true", []string{"--break-stale=0"}, false, false},
		{"0", []string{"--break-stale"}, true, false},
		{"yes", nil, false, true},
		{"yes", []string{"--break-stale"}, true, false}, // the variable is not read
	} {
		a := envApp(map[string]string{"CKPT_BREAK_STALE": tt.env})
		c := &cobra.Command{Use: "save"}
		var lf lockFlags
		lf.register(c)
		if err := c.Flags().Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		got, err := a.envFlagBool(c.Flags(), "break-stale", "CKPT_BREAK_STALE")
		cerr := a.checkEnv(c)
		if tt.bad {
			if exitCode(err) != exitUsage || exitCode(cerr) != exitUsage {
				t.Errorf("CKPT_BREAK_STALE=%q %v: %v, %v; want usage errors", tt.env, tt.args, err, cerr)
			}
			continue
		}
		if err != nil || cerr != nil || got != tt.want {
			t.Errorf("CKPT_BREAK_STALE=%q %v: %v, %v, %v; want %v", tt.env, tt.args, got, err, cerr, tt.want)
		}
		if w := a.waiter(nil, &lf); (w.BreakStale != nil) != tt.want {
			t.Errorf("CKPT_BREAK_STALE=%q %v: waiter breaks stale locks: %v, want %v", tt.env, tt.args, w.BreakStale != nil, tt.want)
		}
	}
}

func TestS3Root(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"s3://bucket", "s3://bucket"},
		{"s3://bucket/", "s3://bucket"},
		{"s3://bucket/ci/nightly/", "s3://bucket/ci/nightly"},
	} {
		if got, err := s3Root(tt.in); err != nil || got != tt.want {
			t.Errorf("s3Root(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, in := range []string{"s3://", "s3:///", "s3:///prefix", "s3://bucket/a/../b"} {
		_, err := s3Root(in)
		if exitCode(err) != exitUsage || !errors.Is(err, errRepoURL) {
			t.Errorf("s3Root(%q): %v, want a usage error", in, err)
		}
	}
}

// --set and --clear change flags on save, run and mark; save and run keep
// --flag and --unflag, hidden, and a mix of old and new names loses none.
func TestSetFlags(t *testing.T) {
	for _, tt := range []struct {
		old        bool
		args       []string
		set, clear []string
	}{
		{true, []string{"--set", "a", "--flag", "b", "--set", "c"}, []string{"a", "c", "b"}, nil},
		{true, []string{"--clear", "x", "--unflag", "y"}, nil, []string{"x", "y"}},
		{false, []string{"--set", "done", "--clear", "incomplete"}, []string{"done"}, []string{"incomplete"}},
	} {
		c := &cobra.Command{Use: "save"}
		var f setFlags
		f.register(c, "in the new generation", tt.old)
		if err := c.Flags().Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		var cfg storage.SaveConfig
		f.option()(&cfg)
		if !slices.Equal(cfg.SetFlags, tt.set) || !slices.Equal(cfg.ClearFlags, tt.clear) {
			t.Errorf("%v: set %v, clear %v; want %v, %v", tt.args, cfg.SetFlags, cfg.ClearFlags, tt.set, tt.clear)
		}
		for _, name := range []string{"flag", "unflag"} {
			fl := c.Flags().Lookup(name)
			if tt.old && (fl == nil || !fl.Hidden) {
				t.Errorf("--%s is not a hidden alias", name)
			}
			if !tt.old && fl != nil {
				t.Errorf("--%s defined without old names", name)
			}
		}
	}
	c := &cobra.Command{Use: "mark"}
	var f setFlags
	f.register(c, "", false)
	if err := c.Flags().Parse([]string{"--flag", "x"}); err == nil {
		t.Error("mark took --flag")
	}
}
