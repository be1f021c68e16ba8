package cmd

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// compRepo is a repository with two sessions for the completion tests:
// nightly, flagged incomplete, whose step build passed and unit-tests
// failed; and ci-run, flagged submitted, with key abc123, a title holding
// an escape sequence, and no steps.
type compRepo struct {
	dir            string
	nightly, ciRun string
}

func newCompRepo(t *testing.T) *compRepo {
	t.Helper()
	r := &compRepo{dir: t.TempDir()}
	r.nightly = r.mustRun(t, nil, "create", "--prefix", "nightly", "--title", "nightly one", "--set", "incomplete")
	r.ciRun = r.mustRun(t, nil, "create", "--prefix", "ci-run", "--title", "evil\x1b]0;pwned\atitle", "--set", "submitted", "--key", "abc123")
	r.mustRun(t, nil, "step", r.nightly, "build", "--", "true")
	if code, _, stderr := r.run(nil, "step", r.nightly, "unit-tests", "--", "false"); code != 1 {
		t.Fatalf("step unit-tests -- false: exit %d, %s", code, stderr)
	}
	return r
}

// run runs ckpt on the repository with env as its whole environment.
func (r *compRepo) run(env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		if k == "CKPT_REPOSITORY" {
			return r.dir
		}
		return ""
	}
	code := Main(args, IO{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, getenv)
	return code, stdout.String(), stderr.String()
}

func (r *compRepo) mustRun(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	code, stdout, stderr := r.run(env, args...)
	if code != 0 {
		t.Fatalf("ckpt %q: exit %d, %s", args, code, stderr)
	}
	return strings.TrimSpace(stdout)
}

// complete asks for the completions of the last of args, as the shell
// scripts do, and returns them with their descriptions and the directive.
func (r *compRepo) complete(t *testing.T, env map[string]string, args ...string) ([]string, cobra.ShellCompDirective) {
	t.Helper()
	code, stdout, stderr := r.run(env, append([]string{cobra.ShellCompRequestCmd}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %q: exit %d, %s", args, code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	d, err := strconv.Atoi(strings.TrimPrefix(last, ":"))
	if !strings.HasPrefix(last, ":") || err != nil {
		t.Fatalf("__complete %q: no directive in %q", args, stdout)
	}
	return lines[:len(lines)-1], cobra.ShellCompDirective(d)
}

// names drops the descriptions.
func names(comps []string) []string {
	out := make([]string, len(comps))
	for i, c := range comps {
		out[i], _, _ = strings.Cut(c, "\t")
	}
	slices.Sort(out)
	return out
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func TestCompleteSessionIDs(t *testing.T) {
	r := newCompRepo(t)
	both := sorted(r.nightly, r.ciRun)
	// Every verb whose synopsis takes an ID, read off the command tree.
	var verbs []string
	for _, c := range NewCommand(IO{Out: io.Discard, Err: io.Discard}, func(string) string { return "" }).Commands() {
		if specs := parseUse(c.Use); len(specs) > 0 && specs[0].kind == argID {
			verbs = append(verbs, c.Name())
		}
	}
	for _, must := range []string{"load", "save", "show", "step", "logs", "steps", "mark", "run", "remove", "verify", "history", "break-lock"} {
		if !slices.Contains(verbs, must) {
			t.Errorf("%s is not among the verbs that take an ID: %q", must, verbs)
		}
	}
	for _, verb := range verbs {
		comps, d := r.complete(t, nil, verb, "")
		if got := names(comps); !slices.Equal(got, both) || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("ckpt %s <TAB>: %q, directive %d; want %q, NoFileComp", verb, got, d, both)
		}
	}

	comps, _ := r.complete(t, nil, "load", "nigh")
	if got := names(comps); !slices.Equal(got, []string{r.nightly}) {
		t.Errorf("ckpt load nigh<TAB>: %q", got)
	}
	// A verb that takes several ids offers those not given yet.
	for _, verb := range []string{"remove", "verify"} {
		comps, d := r.complete(t, nil, verb, r.nightly, "")
		if got := names(comps); !slices.Equal(got, []string{r.ciRun}) || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("ckpt %s ID <TAB>: %q, directive %d", verb, got, d)
		}
	}
	// One id is enough for load.
	if comps, d := r.complete(t, nil, "load", r.nightly, ""); len(comps) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("ckpt load ID <TAB>: %q, directive %d", comps, d)
	}
	// Titles describe the ids, without what a terminal would act on.
	comps, _ = r.complete(t, nil, "show", "")
	for _, c := range comps {
		id, desc, _ := strings.Cut(c, "\t")
		if id == r.nightly && desc != "nightly one" {
			t.Errorf("description of %s: %q", id, desc)
		}
		if strings.ContainsAny(desc, "\x1b\a") {
			t.Errorf("description of %s holds control characters: %q", id, desc)
		}
	}
}

func TestCompleteStepNames(t *testing.T) {
	r := newCompRepo(t)
	steps := []string{"build", "unit-tests"}
	for _, verb := range []string{"step", "logs"} {
		comps, d := r.complete(t, nil, verb, r.nightly, "")
		if got := names(comps); !slices.Equal(got, steps) || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("ckpt %s ID <TAB>: %q, directive %d; want %q", verb, got, d, steps)
		}
		comps, _ = r.complete(t, nil, verb, r.nightly, "u")
		if got := names(comps); !slices.Equal(got, []string{"unit-tests"}) {
			t.Errorf("ckpt %s ID u<TAB>: %q", verb, got)
		}
		// A session without steps has none to offer.
		if comps, d := r.complete(t, nil, verb, r.ciRun, ""); len(comps) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("ckpt %s ID-without-steps <TAB>: %q, directive %d", verb, comps, d)
		}
	}
	// The state describes a step.
	comps, _ := r.complete(t, nil, "logs", r.nightly, "")
	if !slices.Contains(comps, "build\tpassed") || !slices.Contains(comps, "unit-tests\tfailed") {
		t.Errorf("ckpt logs ID <TAB>: %q", comps)
	}

	// With $CKPT_SESSION the ID may be left out: the first word is an id
	// or a step of that session, the second a step only after an id.
	env := map[string]string{"CKPT_SESSION": r.nightly}
	comps, d := r.complete(t, env, "logs", "")
	if got, want := names(comps), sorted(r.nightly, r.ciRun, "build", "unit-tests"); !slices.Equal(got, want) || d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("CKPT_SESSION=ID ckpt logs <TAB>: %q, directive %d; want %q", got, d, want)
	}
	if comps, _ := r.complete(t, env, "step", "b"); !slices.Equal(names(comps), []string{"build"}) {
		t.Errorf("CKPT_SESSION=ID ckpt step b<TAB>: %q", comps)
	}
	if comps, d := r.complete(t, env, "logs", "build", ""); len(comps) != 0 || d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("CKPT_SESSION=ID ckpt logs NAME <TAB>: %q, directive %d", comps, d)
	}
	// The session named on the line wins over $CKPT_SESSION.
	if comps, _ := r.complete(t, map[string]string{"CKPT_SESSION": r.ciRun}, "step", r.nightly, ""); !slices.Equal(names(comps), steps) {
		t.Errorf("CKPT_SESSION=other ckpt step ID <TAB>: %q", comps)
	}

	// After "--" comes CMD: files, as the shell completes a command line.
	if _, d := r.complete(t, nil, "step", r.nightly, "build", "--", ""); d != cobra.ShellCompDirectiveDefault {
		t.Errorf("ckpt step ID NAME -- <TAB>: directive %d, want Default", d)
	}
	if _, d := r.complete(t, nil, "run", r.nightly, "--", "./"); d != cobra.ShellCompDirectiveDefault {
		t.Errorf("ckpt run ID -- <TAB>: directive %d, want Default", d)
	}
}

func TestCompleteFlagValues(t *testing.T) {
	r := newCompRepo(t)
	tests := []struct {
		args []string
		want []string
	}{
		// Flags in use anywhere in the repository.
		{[]string{"mark", r.nightly, "--set", ""}, []string{"incomplete", "submitted"}},
		{[]string{"create", "--set", ""}, []string{"incomplete", "submitted"}},
		{[]string{"list", "--flag", ""}, []string{"incomplete", "submitted"}},
		{[]string{"last", "--no-flag", ""}, []string{"incomplete", "submitted"}},
		{[]string{"gc", "--older-than", "7d", "--flag", "s"}, []string{"submitted"}},
		{[]string{"save", r.nightly, "--flag", ""}, []string{"incomplete", "submitted"}},
		// --clear offers the flags of the session named, else all.
		{[]string{"mark", r.nightly, "--clear", ""}, []string{"incomplete"}},
		{[]string{"mark", r.ciRun, "--clear", ""}, []string{"submitted"}},
		{[]string{"mark", "--clear", ""}, []string{"incomplete", "submitted"}},
		// Prefixes and keys in use.
		{[]string{"list", "--prefix", ""}, []string{"ci-run", "nightly"}},
		{[]string{"last", "--key", ""}, []string{"abc123"}},
		// Durations: examples, or the units after a number.
		{[]string{"save", r.nightly, "--wait", ""}, []string{"1d", "1h", "30s", "5m", "7d"}},
		{[]string{"gc", "--older-than", "3"}, []string{"3d", "3h", "3m", "3s"}},
		{[]string{"run", r.nightly, "--retry-for", "1"}, []string{"1d", "1h", "1m", "1s"}},
	}
	for _, tt := range tests {
		comps, d := r.complete(t, nil, tt.args...)
		if got := names(comps); !slices.Equal(got, tt.want) || d != cobra.ShellCompDirectiveNoFileComp {
			t.Errorf("ckpt %s<TAB>: %q, directive %d; want %q, NoFileComp", strings.Join(tt.args, " "), got, d, tt.want)
		}
	}

	// --repo is a directory; -o and --junit are files.
	for _, tt := range []struct {
		args []string
		want cobra.ShellCompDirective
	}{
		{[]string{"list", "--repo", ""}, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"--repo", ""}, cobra.ShellCompDirectiveFilterDirs},
		{[]string{"load", r.nightly, "-o", ""}, cobra.ShellCompDirectiveDefault},
		{[]string{"report", r.nightly, "--junit", ""}, cobra.ShellCompDirectiveDefault},
		{[]string{"save", r.nightly, ""}, cobra.ShellCompDirectiveDefault},
		{[]string{"create", "--title", ""}, cobra.ShellCompDirectiveNoFileComp},
		{[]string{"step", r.nightly, "build", "--retries", ""}, cobra.ShellCompDirectiveNoFileComp},
	} {
		if comps, d := r.complete(t, nil, tt.args...); d != tt.want || len(comps) != 0 {
			t.Errorf("ckpt %s<TAB>: %q, directive %d, want %d", strings.Join(tt.args, " "), comps, d, tt.want)
		}
	}

	// The repository completed from is the one --repo names.
	other := t.TempDir()
	if comps, _ := r.complete(t, nil, "--repo", other, "load", ""); len(comps) != 0 {
		t.Errorf("ckpt --repo EMPTY load <TAB>: %q", comps)
	}
}

// TestCompleteNoFiles walks every command and flag: none offers file
// names unless its synopsis or usage names a FILE (or, for --repo, a
// directory).
func TestCompleteNoFiles(t *testing.T) {
	r := newCompRepo(t)
	root := NewCommand(IO{Out: io.Discard, Err: io.Discard}, func(string) string { return "" })
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		path := strings.Fields(c.CommandPath())[1:]
		takesFile := slices.ContainsFunc(parseUse(c.Use), func(s argSpec) bool { return s.kind == argFile })
		if _, d := r.complete(t, nil, append(path, "")...); d != cobra.ShellCompDirectiveNoFileComp && !takesFile {
			t.Errorf("ckpt %s <TAB>: directive %d, want NoFileComp", c.CommandPath(), d)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Value.Type() == "bool" {
				return
			}
			varname, _ := pflag.UnquoteUsage(f)
			want := cobra.ShellCompDirectiveNoFileComp
			switch {
			case f.Name == "repo":
				want = cobra.ShellCompDirectiveFilterDirs
			case varname == "FILE":
				want = cobra.ShellCompDirectiveDefault
			}
			if _, d := r.complete(t, nil, append(path, "--"+f.Name, "")...); d != want {
				t.Errorf("ckpt %s --%s <TAB>: directive %d, want %d", c.CommandPath(), f.Name, d, want)
			}
		})
		for _, sub := range c.Commands() {
			visit(sub)
		}
	}
	visit(root)
}

func TestCompleteHelpTopics(t *testing.T) {
	r := newCompRepo(t)
	comps, d := r.complete(t, nil, "help", "")
	got := names(comps)
	for _, want := range []string{"environment", "step", "load"} {
		if !slices.Contains(got, want) {
			t.Errorf("ckpt help <TAB>: %q lacks %s", got, want)
		}
	}
	if d != cobra.ShellCompDirectiveNoFileComp {
		t.Errorf("ckpt help <TAB>: directive %d", d)
	}
	if comps, _ := r.complete(t, nil, "help", "env"); !slices.Equal(names(comps), []string{"environment"}) {
		t.Errorf("ckpt help env<TAB>: %q", comps)
	}
}

func TestParseUse(t *testing.T) {
	tests := []struct {
		use  string
		want []argSpec
	}{
		{"list [--prefix P]", nil},
		{"load [ID] [-o FILE|-]", []argSpec{{kind: argID, optional: true}}},
		{"save [ID] [FILE|-] [--title T]", []argSpec{{kind: argID, optional: true}, {kind: argFile, optional: true}}},
		{"step [ID] NAME [--key KEY] -- CMD [ARGS...]", []argSpec{{kind: argID, optional: true}, {kind: argStep}}},
		{"remove ID...", []argSpec{{kind: argID, variadic: true}}},
		{"verify [ID...]", []argSpec{{kind: argID, optional: true, variadic: true}}},
		{"help [COMMAND|TOPIC]", []argSpec{{kind: argOther, optional: true}}},
	}
	for _, tt := range tests {
		if got := parseUse(tt.use); !slices.Equal(got, tt.want) {
			t.Errorf("parseUse(%q) = %+v, want %+v", tt.use, got, tt.want)
		}
	}
}
