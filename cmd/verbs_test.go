package cmd

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// evilTitle would set a terminal's window title if printed as it is.
const evilTitle = "\x1b]0;pwned\a"

// verbRepo is a local repository for the verbs' tests, with HOME and
// XDG_CACHE_HOME of its own.
type verbRepo struct {
	dir, home string
	now       time.Time // what the verbs take for now: before anything was saved
	id        string    // a session made by setup
}

// newVerbRepo makes an empty repository with one session, titled
// evilTitle, flagged gcme, never saved.
func newVerbRepo(t *testing.T) *verbRepo {
	t.Helper()
	tmp := t.TempDir()
	r := &verbRepo{dir: filepath.Join(tmp, "repo"), home: filepath.Join(tmp, "home"), now: time.Now()}
	r.id = r.main(t, 0, "create", "--prefix", "fresh", "--title", evilTitle, "--set", "gcme")
	return r
}

// newStepsRepo is newVerbRepo with a saved payload and two steps: one
// passed, with a bidirectional override in its name, and one failed, with
// a log.
func newStepsRepo(t *testing.T) *verbRepo {
	t.Helper()
	r := newVerbRepo(t)
	payload := filepath.Join(r.home, "state.json")
	if err := os.MkdirAll(r.home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(payload, []byte(`{"step":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r.main(t, 0, "save", r.id, payload)
	r.main(t, 0, "step", r.id, "build\u202e", "--", "true")
	r.main(t, 1, "step", r.id, "unit", "--", "sh", "-c", "echo FAIL; exit 1")
	return r
}

func (r *verbRepo) getenv(k string) string {
	switch k {
	case "CKPT_REPOSITORY":
		return r.dir
	case "HOME":
		return r.home
	case "XDG_CACHE_HOME":
		return filepath.Join(r.home, ".cache")
	}
	return ""
}

// main runs ckpt on the repository, wants exit status code, and returns
// stdout without its last newline.
func (r *verbRepo) main(t *testing.T, code int, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if got := Main(args, IO{In: strings.NewReader(""), Out: &out, Err: &errb}, r.getenv); got != code {
		t.Fatalf("ckpt %q: exit %d, want %d; stderr:\n%s", args, got, code, errb.String())
	}
	return strings.TrimSuffix(out.String(), "\n")
}

// app returns an app on the repository whose stdout and stderr are
// terminals or not, with --json or not, and the buffers it writes to.
func (r *verbRepo) app(terminal, asJSON bool) (*app, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	a := &app{
		io:     IO{In: strings.NewReader(""), Out: &out, Err: &errb, Terminal: func(any) bool { return terminal }},
		getenv: r.getenv,
		now:    func() time.Time { return r.now },
		json:   asJSON,
	}
	return a, &out, &errb
}

var (
	idSuffix  = regexp.MustCompile(`-[a-z2-7]{12}\b`)
	timestamp = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
)

// normalize takes out of s what differs between two repositories made
// alike: where they are, their sessions' random ids and save times.
func (r *verbRepo) normalize(s string) string {
	s = strings.ReplaceAll(s, r.dir, "REPO")
	s = idSuffix.ReplaceAllString(s, "-ID")
	return timestamp.ReplaceAllString(s, "TIME")
}

// Every verb renders the same on a terminal and on a pipe (none documents
// a difference), never lets stored text drive the terminal in text mode,
// and prints JSON that parses with --json.
func TestVerbsOnTerminalAndPipe(t *testing.T) {
	type modeOut struct{ stdout, stderr string }
	evil := `\u001b]0;pwned\u0007` // evilTitle as encoding/json writes it
	tests := []struct {
		name string
		// steps runs the verb on newStepsRepo's session, made once;
		// otherwise on newVerbRepo's, made anew for each mode.
		steps bool
		json  bool   // prints JSON with --json
		code  int    // the exit status its error maps to
		want  string // in stdout or stderr, text mode
		// wantJSON is in stdout with --json.
		wantJSON string
		run      func(a *app, r *verbRepo) error
	}{
		{"list", true, true, 0, `\x1b]0;pwned\a  gcme`, evil, func(a *app, r *verbRepo) error {
			return a.runList(t.Context(), repository.Filter{})
		}},
		{"last", true, true, 0, "fresh-ID\n", evil, func(a *app, r *verbRepo) error {
			return a.runLast(t.Context(), lastOptions{filter: repository.Filter{Flags: []string{"gcme"}}})
		}},
		{"history", true, true, 0, `\x1b]0;pwned\a`, evil, func(a *app, r *verbRepo) error {
			return a.runHistory(t.Context(), historyOptions{id: r.id})
		}},
		{"show", true, true, 0, `title:       \x1b]0;pwned\a`, evil, func(a *app, r *verbRepo) error {
			return a.runShow(t.Context(), showOptions{id: r.id})
		}},
		{"steps", true, true, 0, `build\u202e  passed`, `"name": "build` + "\u202e", func(a *app, r *verbRepo) error {
			return a.runSteps(t.Context(), stepsOptions{id: r.id})
		}},
		{"wait", true, true, 1, `build\u202e  passed`, `"state": "failed"`, func(a *app, r *verbRepo) error {
			return a.runWait(t.Context(), waitOptions{id: r.id})
		}},
		{"logs", true, false, 0, "FAIL\n", "", func(a *app, r *verbRepo) error {
			return a.runLogs(t.Context(), logsOptions{id: r.id, step: "unit"})
		}},
		{"report", true, false, 0, "### ckpt session fresh-ID: 1 passed, 1 failed", "", func(a *app, r *verbRepo) error {
			return a.runReport(t.Context(), reportOptions{id: r.id, markdown: true})
		}},
		{"version", true, true, 0, "checkpoint format: ", `"format": `, func(a *app, r *verbRepo) error {
			return a.runVersion()
		}},
		{"create", false, true, 0, "made-ID\n", evil, func(a *app, r *verbRepo) error {
			return a.runCreate(t.Context(), repository.CreateOptions{Prefix: "made", Title: evilTitle})
		}},
		{"mark", false, true, 0, "1\n", `"generation": 1`, func(a *app, r *verbRepo) error {
			title := evilTitle + "!"
			return a.runMark(t.Context(), markOptions{id: r.id, title: &title, keep: storage.DefaultKeep})
		}},
		{"gc", false, true, 0, "removed fresh-ID\n", `"removed": [`, func(a *app, r *verbRepo) error {
			return a.runGC(t.Context(), repository.GCOptions{OlderThan: time.Hour, Now: r.now.Add(2 * time.Hour), Flags: []string{"gcme"}})
		}},
		{"remove", false, true, 0, "", `"fresh-ID"`, func(a *app, r *verbRepo) error {
			return a.runRemove(t.Context(), removeOptions{ids: []string{r.id}})
		}},
		{"break-lock", false, true, 0, "ckpt: session fresh-ID was not locked\n", `"broken": false`, func(a *app, r *verbRepo) error {
			return a.runBreakLock(t.Context(), breakLockOptions{id: r.id})
		}},
		{"run", false, true, 0, "1\n", `"generation": 1`, func(a *app, r *verbRepo) error {
			return a.runTxn(t.Context(), runOptions{id: r.id, argv: []string{"sh", "-c", `echo 7 > "$CKPT_NEXT"`}, keep: storage.DefaultKeep})
		}},
		{"step", false, false, 0, "hi\n", "", func(a *app, r *verbRepo) error {
			return a.runStep(t.Context(), stepOptions{id: r.id, name: "hello", argv: []string{"echo", "hi"}, logLimit: storage.DefaultLogLimit})
		}},
		{"queue", false, false, 0, "ckpt: queue: ran 1 steps, 1 passed; 0 run by others or passed before\n", "", func(a *app, r *verbRepo) error {
			return a.runQueue(t.Context(), queueOptions{id: r.id, names: []string{"q1"}, argv: []string{"echo", "{}"}, maxAttempts: 3, logLimit: storage.DefaultLogLimit})
		}},
	}
	shared := newStepsRepo(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, asJSON := range []bool{false, true} {
				var seen []modeOut
				for _, terminal := range []bool{false, true} {
					r := shared
					if !tt.steps {
						r = newVerbRepo(t)
					}
					a, out, errb := r.app(terminal, asJSON)
					err := tt.run(a, r)
					if got := exitCode(err); got != tt.code {
						t.Fatalf("json %v, terminal %v: exit %d (%v), want %d", asJSON, terminal, got, err, tt.code)
					}
					m := modeOut{r.normalize(out.String()), r.normalize(errb.String())}
					seen = append(seen, m)
					switch {
					case !asJSON:
						unsafe := "\x1b\a\u202e"
						if raw := out.String() + errb.String(); strings.ContainsAny(raw, unsafe) {
							t.Errorf("terminal %v: stored text reached the output raw:\nstdout %q\nstderr %q", terminal, out, errb)
						}
						if !strings.Contains(m.stdout+m.stderr, tt.want) {
							t.Errorf("terminal %v: output lacks %q:\nstdout %q\nstderr %q", terminal, tt.want, m.stdout, m.stderr)
						}
					case tt.json:
						if !json.Valid(out.Bytes()) {
							t.Errorf("terminal %v: --json printed what is not JSON:\n%s", terminal, out)
						}
						if !strings.Contains(m.stdout, tt.wantJSON) {
							t.Errorf("terminal %v: --json lacks %q:\n%s", terminal, tt.wantJSON, m.stdout)
						}
					}
				}
				if seen[0] != seen[1] {
					t.Errorf("json %v: a pipe and a terminal differ:\npipe     %q\nterminal %q", asJSON, seen[0], seen[1])
				}
			}
		})
	}
}

// A step name that holds an escape is refused before anything runs, and
// the error that names it does not carry the escape raw.
func TestVerbsRefuseEscapedStepNames(t *testing.T) {
	r := newVerbRepo(t)
	list := filepath.Join(t.TempDir(), "steps.txt")
	if err := os.WriteFile(list, []byte("ok\nevil\x1b]0;pwned\a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := "evil" + evilTitle
	for _, args := range [][]string{
		{"step", r.id, name, "--", "true"},
		{"logs", r.id, name},
		{"break-lock", r.id, "--step", name},
		{"wait", r.id, "--from", list},
		{"queue", r.id, "--from", list, "--", "true"},
	} {
		for _, terminal := range []bool{false, true} {
			var out, errb bytes.Buffer
			stdio := IO{In: strings.NewReader(""), Out: &out, Err: &errb, Terminal: func(any) bool { return terminal }}
			if code := Main(args, stdio, r.getenv); code != exitUsage {
				t.Errorf("%s, terminal %v: exit %d, want %d; stderr %q", args[0], terminal, code, exitUsage, errb.String())
			}
			if out.Len() > 0 || strings.ContainsAny(errb.String(), "\x1b\a") || !strings.Contains(errb.String(), `\x1b]0;pwned\a`) {
				t.Errorf("%s, terminal %v: stdout %q, stderr %q; want nothing, and the name escaped", args[0], terminal, out.String(), errb.String())
			}
		}
	}
}
