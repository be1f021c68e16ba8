package cmd

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestHelpEnvironment(t *testing.T) {
	r := &compRepo{dir: t.TempDir()}
	for _, args := range [][]string{{"help", "environment"}, {"environment"}, {"environment", "--help"}} {
		code, stdout, stderr := r.run(nil, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("ckpt %q: exit %d, %s", args, code, stderr)
		}
		if !strings.Contains(stdout, environmentLong) {
			t.Errorf("ckpt %q does not print the variables:\n%s", args, stdout)
		}
		if strings.Contains(stdout, "EXIT STATUS") {
			t.Errorf("ckpt %q prints the root help:\n%s", args, stdout)
		}
	}
	// The root help lists the topic; ckpt help VERB is the verb's help.
	if _, stdout, _ := r.run(nil, "--help"); !regexp.MustCompile(`(?m)^Additional help topics:\n\s+ckpt environment\s+Environment variables`).MatchString(stdout) {
		t.Errorf("ckpt --help does not list the environment topic:\n%s", stdout)
	}
	if code, stdout, _ := r.run(nil, "help", "step"); code != 0 || !strings.Contains(stdout, "ckpt step [ID] NAME") {
		t.Errorf("ckpt help step: exit %d\n%s", code, stdout)
	}
	// A topic that does not exist is a usage error, not the root help.
	for _, args := range [][]string{{"help", "frobnicate"}, {"help", "step", "extra"}} {
		code, stdout, stderr := r.run(nil, args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "ckpt: unknown help topic") {
			t.Errorf("ckpt %q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
		}
	}
}

// TestEnvironmentListsEveryVariable finds the variables this package's
// code names (what it reads with getenv, what it sets for CMD, what its
// help mentions) and checks that 'ckpt help environment' lists each, with
// a meaning, on a line of its own.
func TestEnvironmentListsEveryVariable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\b(?:CKPT|AWS|XDG)_[A-Z0-9_]*[A-Z0-9]\b`)
	found := map[string]string{}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || f == "help_env.go" { // not the list itself
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range name.FindAllString(s, -1) {
				found[v] = fset.Position(lit.Pos()).String()
			}
			return true
		})
	}
	for _, must := range []string{"CKPT_REPOSITORY", "CKPT_SESSION", "CKPT_CHECKPOINT", "CKPT_NEXT", "CKPT_S3_LEASE", "CKPT_S3_PATH_STYLE", "XDG_CACHE_HOME"} {
		if _, ok := found[must]; !ok {
			t.Errorf("%s not found in the code: the search is broken", must)
		}
	}
	listed := map[string]bool{}
	for _, line := range strings.Split(environmentLong, "\n") {
		// "  NAME   meaning", or "  NAME" with the meaning on the next line.
		if f := strings.Fields(line); strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "   ") && len(f) > 0 {
			listed[f[0]] = true
		}
	}
	for v, where := range found {
		if !listed[v] {
			t.Errorf("%s (%s) is not listed by 'ckpt help environment'", v, where)
		}
	}
	// The variables that matter most, with the help of the relevant verbs.
	r := &compRepo{dir: t.TempDir()}
	_, rootHelp, _ := r.run(nil, "--help")
	for _, v := range []string{"CKPT_S3_LEASE", "CKPT_S3_PATH_STYLE", "CKPT_REPOSITORY", "CKPT_SESSION", "ckpt help environment"} {
		if !strings.Contains(rootHelp, v) {
			t.Errorf("ckpt --help does not mention %s", v)
		}
	}
}

func TestVersion(t *testing.T) {
	r := &compRepo{dir: t.TempDir()}
	// Unstamped, as go build leaves it: the build information.
	code, stdout, stderr := r.run(nil, "--version")
	if code != 0 || !regexp.MustCompile(`^ckpt \S+ \(commit [^)]+\)\n$`).MatchString(stdout) {
		t.Errorf("ckpt --version: exit %d, %q, %s", code, stdout, stderr)
	}

	defer func(v, c, d string) { version, commit, date = v, c, d }(version, commit, date)
	version, commit, date = "1.2.3", "0123456789abcdef0123456789abcdef01234567", "2026-11-01T10:00:00Z"
	if _, stdout, _ := r.run(nil, "--version"); stdout != "ckpt 1.2.3 (commit 0123456789abcdef0123456789abcdef01234567)\n" {
		t.Errorf("stamped ckpt --version: %q", stdout)
	}
	_, stdout, _ = r.run(nil, "version")
	if !strings.HasPrefix(stdout, "ckpt 1.2.3\nrevision: 0123456789abcdef0123456789abcdef01234567") || !strings.Contains(stdout, "checkpoint format: ") {
		t.Errorf("stamped ckpt version: %q", stdout)
	}
	_, stdout, _ = r.run(nil, "version", "--json")
	var v versionJSON
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatal(err)
	}
	if v.Version != "1.2.3" || v.Revision != commit || v.Time != date {
		t.Errorf("stamped ckpt version --json: %+v", v)
	}
	// --version is the root's own: a verb does not take it, and -v is free.
	for _, args := range [][]string{{"list", "--version"}, {"-v"}} {
		if code, _, _ := r.run(nil, args...); code != exitUsage {
			t.Errorf("ckpt %q: exit %d, want %d", args, code, exitUsage)
		}
	}
}
