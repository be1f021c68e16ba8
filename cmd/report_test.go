package cmd

import (
	"bytes"
	"context"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// The JUnit report as a reader parses it: written apart from the types
// junitReport renders, so that a test reads what the XML says, not what the
// renderer meant.
type (
	parsedSuites struct {
		XMLName  xml.Name      `xml:"testsuites"`
		Tests    int           `xml:"tests,attr"`
		Failures int           `xml:"failures,attr"`
		Errors   int           `xml:"errors,attr"`
		Suites   []parsedSuite `xml:"testsuite"`
	}
	parsedSuite struct {
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Skipped  string       `xml:"skipped,attr"`
		Time     string       `xml:"time,attr"`
		Cases    []parsedCase `xml:"testcase"`
	}
	parsedCase struct {
		Name       string `xml:"name,attr"`
		Classname  string `xml:"classname,attr"`
		Time       string `xml:"time,attr"`
		Properties []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Failure *parsedFailure `xml:"failure"`
		Error   *parsedFailure `xml:"error"`
	}
	parsedFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		Text    string `xml:",chardata"`
	}
)

func parseJUnit(t *testing.T, doc []byte) parsedSuites {
	t.Helper()
	var got parsedSuites
	if err := xml.Unmarshal(doc, &got); err != nil {
		t.Fatalf("the JUnit report does not parse: %v\n%s", err, doc)
	}
	if len(got.Suites) != 1 {
		t.Fatalf("%d test suites, want 1", len(got.Suites))
	}
	return got
}

// nastyLog is a log with what a real one may hold and XML 1.0 cannot:
// colours, a terminal title, a NUL, a bell, a backspace, a byte that is not
// UTF-8, a noncharacter; and what XML must escape.
const nastyLog = "\x1b[1;31mFAIL\x1b[0m TestParse\r\n" +
	"\x1b]0;window title\x07progress 50%\rprogress 100%\n" +
	"nul:\x00 bell:\x07 bs:\x08 bad utf-8:\xff\xfe nonchar:\uffff\n" +
	"markup: <tag attr=\"x\">&amp; ]]> 'q'\n" +
	"tab:\tend\n"

// reportSteps are steps in every state, as runReport passes them on.
func reportSteps() []reportStep {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	return []reportStep{
		{Step: checkpoint.Step{Name: "build", State: checkpoint.StepPassed, Exit: 0, Attempts: 1, Started: t0,
			Duration: 1500 * time.Millisecond, Identity: checkpoint.Identity{Key: "1a2b3c", Command: []string{"make", "build"}}}},
		{Step: checkpoint.Step{Name: "unit|`tests`", State: checkpoint.StepFailed, Exit: 3, Attempts: 2, Started: t0,
			Duration: 2*time.Second + 345*time.Millisecond, Identity: checkpoint.Identity{Command: []string{"sh", "-c", "exit 3"}}},
			log: logTail{attempt: 2, text: strings.TrimSuffix(cleanLog(nastyLog), "\n"), cut: true}},
		{Step: checkpoint.Step{Name: "TestFoo/sub_case#01", State: checkpoint.StepInterrupted, Exit: 130, Attempts: 1,
			Started: t0, Duration: time.Second}},
		{Step: checkpoint.Step{Name: "reboot", State: checkpoint.StepCrashed, Exit: -1, Attempts: 4, Started: t0,
			Note: "pid 42 on ci-7 (ckpt step) stopped without recording an end"}},
		{Step: checkpoint.Step{Name: "soak", State: checkpoint.StepRunning, Exit: -1, Attempts: 1, Started: t0}},
	}
}

func TestJUnitReport(t *testing.T) {
	doc, err := junitReport("nightly-abcdefghijkl", reportSteps())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(doc, []byte(xml.Header)) {
		t.Errorf("the report does not start with an XML declaration:\n%s", doc)
	}
	for i, r := range string(doc) {
		if r < 0x20 && r != '\n' && r != '\t' || r == utf8.RuneError && !strings.HasPrefix(string(doc[i:]), "\uFFFD") || r == 0xffff {
			t.Fatalf("the report holds %U at byte %d, which XML 1.0 does not allow:\n%q", r, i, doc)
		}
	}

	got := parseJUnit(t, doc)
	if got.Tests != 5 || got.Failures != 3 || got.Errors != 1 {
		t.Errorf("testsuites counts tests=%d failures=%d errors=%d, want 5 3 1", got.Tests, got.Failures, got.Errors)
	}
	s := got.Suites[0]
	if s.Name != "nightly-abcdefghijkl" || s.Tests != 5 || s.Failures != 3 || s.Errors != 1 || s.Skipped != "0" {
		t.Errorf("testsuite name=%q tests=%d failures=%d errors=%d skipped=%q, want nightly-abcdefghijkl 5 3 1 0",
			s.Name, s.Tests, s.Failures, s.Errors, s.Skipped)
	}
	if s.Time != "4.845" {
		t.Errorf("testsuite time=%q, want 4.845 (the sum of the steps')", s.Time)
	}
	if len(s.Cases) != 5 {
		t.Fatalf("%d test cases, want 5", len(s.Cases))
	}
	wantNames := []string{"build", "unit|`tests`", "TestFoo/sub_case#01", "reboot", "soak"}
	wantTimes := []string{"1.500", "2.345", "1.000", "0.000", "0.000"}
	for i, c := range s.Cases {
		if c.Name != wantNames[i] || c.Classname != "ckpt.nightly-abcdefghijkl" || c.Time != wantTimes[i] {
			t.Errorf("case %d: name=%q classname=%q time=%q, want %q ckpt.nightly-abcdefghijkl %q",
				i, c.Name, c.Classname, c.Time, wantNames[i], wantTimes[i])
		}
	}

	build := s.Cases[0]
	if build.Failure != nil || build.Error != nil {
		t.Errorf("passed step has a failure or error: %+v %+v", build.Failure, build.Error)
	}
	props := fmt.Sprint(build.Properties)
	if props != "[{key 1a2b3c} {command make build}]" {
		t.Errorf("passed step's properties = %s, want its key and command line", props)
	}

	failed := s.Cases[1].Failure
	if failed == nil || s.Cases[1].Error != nil {
		t.Fatalf("failed step: failure %+v, error %+v; want a failure only", failed, s.Cases[1].Error)
	}
	if failed.Type != "failed" || failed.Message != "failed with exit status 3 (attempt 2)" {
		t.Errorf("failed step's failure type=%q message=%q", failed.Type, failed.Message)
	}
	for _, want := range []string{
		"failed with exit status 3 (attempt 2)\nend of the log of attempt 2:\n",
		"FAIL TestParse\n",
		"progress 50%\nprogress 100%\n",
		"nul:\uFFFD bell:\uFFFD bs:\uFFFD bad utf-8:\uFFFD\uFFFD nonchar:\uFFFD\n",
		"markup: <tag attr=\"x\">&amp; ]]> 'q'\n",
		"tab:\tend\n",
	} {
		if !strings.Contains(failed.Text, want) {
			t.Errorf("failed step's failure text lacks %q:\n%s", want, failed.Text)
		}
	}
	for _, bad := range []string{"\x1b", "[1;31m", "window title"} {
		if strings.Contains(failed.Text, bad) {
			t.Errorf("failed step's failure text holds %q, a terminal escape sequence:\n%s", bad, failed.Text)
		}
	}

	interrupted := s.Cases[2].Failure
	if interrupted == nil || interrupted.Type != "interrupted" || interrupted.Message != "interrupted with exit status 130 (attempt 1)" ||
		!strings.Contains(interrupted.Text, "no log was kept") {
		t.Errorf("interrupted step's failure = %+v", interrupted)
	}
	crashed := s.Cases[3].Failure
	if crashed == nil || crashed.Type != "crashed" ||
		crashed.Message != "crashed: pid 42 on ci-7 (ckpt step) stopped without recording an end (attempt 4)" {
		t.Errorf("crashed step's failure = %+v", crashed)
	}
	running := s.Cases[4]
	if running.Failure != nil || running.Error == nil || running.Error.Message != "still running" {
		t.Errorf("running step: failure %+v, error %+v; want an error \"still running\"", running.Failure, running.Error)
	}
}

// TestXMLDecoderStrict makes sure the round trip above would catch what
// it guards against: encoding/xml refuses a control character.
func TestXMLDecoderStrict(t *testing.T) {
	var v struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal([]byte("<a>x\x1b[31my</a>"), &v); err == nil {
		t.Fatal("encoding/xml parsed a document holding ESC; the JUnit round trip proves nothing")
	}
}

func TestJUnitReportNoSteps(t *testing.T) {
	doc, err := junitReport("empty-abcdefghijkl", nil)
	if err != nil {
		t.Fatal(err)
	}
	got := parseJUnit(t, doc)
	if s := got.Suites[0]; s.Name != "empty-abcdefghijkl" || s.Tests != 0 || len(s.Cases) != 0 || s.Time != "0.000" {
		t.Errorf("empty session's suite = %+v", s)
	}
}

func TestMarkdownReport(t *testing.T) {
	steps := reportSteps()
	steps[1].log.text = "ok\n```go\nx := 1\n````\nend"
	md := markdownReport("nightly_x-abcdefghijkl", steps)

	head, _, _ := strings.Cut(md, "\n")
	if want := `### ckpt session nightly\_x-abcdefghijkl: 1 passed, 1 failed, 1 interrupted, 1 crashed, 1 running`; head != want {
		t.Errorf("heading = %q, want %q", head, want)
	}
	for _, want := range []string{
		"\n| step | state | exit | attempts | duration |\n|---|---|---|--:|--:|\n",
		"\n| `build` | passed | 0 | 1 | 1.5s |\n",
		"\n| `` unit\\|`tests` `` | failed | 3 | 2 | 2.3s |\n",
		"\n| `TestFoo/sub_case#01` | interrupted | 130 | 1 | 1s |\n",
		"\n| `reboot` | crashed | - | 4 | 0s |\n",
		"\n| `soak` | running | - | 1 | - |\n",
		// The fence is longer than the longest backtick run in the log.
		"<details><summary><code>unit|`tests`</code> failed with exit status 3 (attempt 2)</summary>\n\n" +
			"end of the log of attempt 2:\n\n`````\nok\n```go\nx := 1\n````\nend\n`````\n\n</details>\n",
		"<details><summary><code>TestFoo/sub_case#01</code> interrupted with exit status 130 (attempt 1)</summary>\n\nno log was kept.\n\n</details>\n",
		"<details><summary><code>reboot</code> crashed: pid 42 on ci-7 (ckpt step) stopped without recording an end (attempt 4)</summary>",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	if n := strings.Count(md, "<details>"); n != 3 {
		t.Errorf("%d <details> blocks, want 3: one per failed, interrupted or crashed step\n%s", n, md)
	}
	// Every table row has the table's five cells: no pipe in a name split one.
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(line, "| ") {
			if n := len(regexp.MustCompile(`(^|[^\\])\|`).FindAllString(line, -1)); n != 6 {
				t.Errorf("table row %q has %d cell separators, want 6", line, n)
			}
		}
	}
}

func TestMarkdownReportNoSteps(t *testing.T) {
	if got, want := markdownReport("empty-abcdefghijkl", nil), "### ckpt session empty-abcdefghijkl: no steps\n"; got != want {
		t.Errorf("markdownReport with no steps = %q, want %q", got, want)
	}
}

func TestMarkdownReportManyFailures(t *testing.T) {
	var steps []reportStep
	for i := range maxDetails + 7 {
		steps = append(steps, reportStep{Step: checkpoint.Step{Name: fmt.Sprintf("s%d", i), State: checkpoint.StepFailed, Exit: 1, Attempts: 1},
			log: logTail{attempt: 1, text: "boom"}})
	}
	md := markdownReport("many-abcdefghijkl", steps)
	if n := strings.Count(md, "<details>"); n != maxDetails {
		t.Errorf("%d <details> blocks, want at most %d", n, maxDetails)
	}
	if !strings.Contains(md, "\n7 more steps did not pass") {
		t.Errorf("markdown does not say how many log tails were left out:\n%s", md[len(md)-200:])
	}
}

func TestMarkdownEscaping(t *testing.T) {
	cells := []struct{ in, want string }{
		{"build", "`build`"},
		{"a|b", "`a\\|b`"},
		{"a`b", "``a`b``"},
		{"`x", "`` `x ``"},
		{"a``b`", "``` a``b` ```"},
		{"@team #12 :tada: *x*", "`@team #12 :tada: *x*`"},
	}
	for _, tt := range cells {
		if got := markdownCell(tt.in); got != tt.want {
			t.Errorf("markdownCell(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	texts := []struct{ in, want string }{
		{"gave up after 3 attempts", "gave up after 3 attempts"},
		{"# 1. *a* _b_ <c> [d](e) `f` | ~g~ $h$ & \\", `\# 1\. \*a\* \_b\_ \<c\> \[d\]\(e\) \` + "`f\\`" + ` \| \~g\~ \$h\$ \& \\`},
	}
	for _, tt := range texts {
		if got := markdownText(tt.in); got != tt.want {
			t.Errorf("markdownText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCleanLog(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, ünïcödé ✓\n", "plain text, ünïcödé ✓\n"},
		{"\x1b[32mok\x1b[0m \x1b[1;4;38;5;208mbold\x1b[m", "ok bold"},
		{"\x1b[2K\x1b[1Gdone", "done"},
		{"\x1b]0;title\x07after", "after"},
		{"\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", "link"},
		{"\x1b(Bcharset \x1b=keypad", "charset keypad"},
		{"a\r\nb\rc\n", "a\nb\nc\n"},
		{"tab\there", "tab\there"},
		{"nul\x00 del\x7f c1\u009b bell\x07", "nul\uFFFD del\uFFFD c1\uFFFD bell\uFFFD"},
		{"bad\xff\xc3 utf8", "bad\uFFFD\uFFFD utf8"},
		{"non\ufffe\uffffchar", "non\uFFFD\uFFFDchar"},
		{"lone ESC at the end\x1b", "lone ESC at the end"},
		{"cut short \x1b[31", "cut short "},
		{"\x1b[31\x00x", "\uFFFDx"},
	}
	for _, tt := range tests {
		if got := cleanLog(tt.in); got != tt.want {
			t.Errorf("cleanLog(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTail(t *testing.T) {
	long := strings.Repeat("x", 10000)
	tests := []struct {
		name     string
		in       string
		maxBytes int
		maxLines int
		want     string
		cut      bool
	}{
		{"empty", "", 4096, 50, "", false},
		{"short", "one\ntwo\n", 4096, 50, "one\ntwo", false},
		{"no final newline", "one\ntwo", 4096, 50, "one\ntwo", false},
		{"too many lines", lines(1, 80), 4096, 50, strings.TrimSuffix(lines(31, 80), "\n"), true},
		{"exactly the lines", lines(1, 50), 4096, 50, strings.TrimSuffix(lines(1, 50), "\n"), false},
		// "line 13\n" to "line 20\n" are 64 bytes: a bound of 64 keeps them
		// whole, one of 60 cuts line 13, which is then dropped.
		{"bytes on a line boundary", lines(1, 20), 64, 50, strings.TrimSuffix(lines(13, 20), "\n"), true},
		{"bytes within a line", lines(1, 20), 60, 50, strings.TrimSuffix(lines(14, 20), "\n"), true},
		{"one long line", "start" + long + "end\n", 4096, 50, long[len(long)-4092:] + "end", true},
		{"a cut rune", "é" + strings.Repeat("é", 100), 51, 50, strings.Repeat("é", 25), true},
		{"colours and CRLF", "\x1b[31mred\x1b[0m\r\n", 4096, 50, "red", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Written in one go and in small pieces, which tailWriter
			// compacts as it goes.
			for _, chunk := range []int{len(tt.in) + 1, 1, 7, 1000} {
				got, cut, err := tail(&chunkReader{s: tt.in, n: chunk}, tt.maxBytes, tt.maxLines)
				if err != nil || got != tt.want || cut != tt.cut {
					t.Errorf("in chunks of %d: tail = %q, %v, %v; want %q, %v", chunk, got, cut, err, tt.want, tt.cut)
				}
				if !utf8.ValidString(got) {
					t.Errorf("in chunks of %d: tail is not valid UTF-8: %q", chunk, got)
				}
			}
		})
	}
}

// chunkReader reads s at most n bytes at a time.
type chunkReader struct {
	s string
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.s == "" {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), r.n)], r.s)
	r.s = r.s[n:]
	return n, nil
}

// runMain runs ckpt with args against the repository at repo and returns
// its exit status, stdout and stderr.
func runMain(repo string, env map[string]string, args ...string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		if k == "CKPT_REPOSITORY" {
			return repo
		}
		return env[k]
	}
	code := Main(args, IO{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, getenv)
	return code, stdout.String(), stderr.String()
}

func TestReportUsage(t *testing.T) {
	repo := t.TempDir()
	tests := []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"report", "nightly-abcdefghijkl"}, nil, "pick --junit FILE, --html FILE, --markdown, or more than one"},
		{[]string{"report", "nightly-abcdefghijkl", "--junit", "-", "--markdown"}, nil, "--junit - and --markdown would both write to stdout: give --junit a file"},
		{[]string{"report", "nightly-abcdefghijkl", "--html", "-", "--markdown"}, nil, "--html - and --markdown would both write to stdout: give --html a file"},
		{[]string{"report", "nightly-abcdefghijkl", "--junit", "-", "--html", "-"}, nil, "--junit - and --html - would both write to stdout"},
		{[]string{"report", "nightly-abcdefghijkl", "--junit", "-", "--html", "-", "--markdown"}, nil, "would all write to stdout"},
		{[]string{"report", "--html"}, map[string]string{"CKPT_SESSION": "nightly-abcdefghijkl"}, "flag needs an argument"},
		{[]string{"report", "--markdown"}, nil, "$CKPT_SESSION is not set"},
		{[]string{"report", "a-abcdefghijkl", "b-abcdefghijkl", "--markdown"}, nil, "accepts at most 1 arg"},
		{[]string{"report", "--junit"}, map[string]string{"CKPT_SESSION": "nightly-abcdefghijkl"}, "flag needs an argument"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runMain(repo, tt.env, tt.args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tt.want) {
			t.Errorf("ckpt %s: exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr",
				strings.Join(tt.args, " "), code, stdout, stderr, tt.want)
		}
	}
	if code, _, stderr := runMain(repo, nil, "report", "nosuch-abcdefghijkl", "--markdown"); code != exitNotFound {
		t.Errorf("report of a missing session: exit %d (%s), want 3", code, stderr)
	}
}

// TestReport runs 'ckpt report' on a session whose steps were recorded
// through pkg/storage, as 'ckpt step' records them.
func TestReport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	r, err := repository.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := r.Create(ctx, repository.CreateOptions{Prefix: "report"})
	if err != nil {
		t.Fatal(err)
	}
	runStep := func(name, state string, exit int, log string) {
		t.Helper()
		c, err := s.StartStep(ctx, name, storage.StepOptions{Identity: checkpoint.Identity{Key: "k1", Command: []string{"run", name}},
			Command: "test", Runner: "ci-runner-1"})
		if err != nil {
			t.Fatal(err)
		}
		if log != "" {
			w, err := c.OpenLog(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(w, log); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.End(ctx, state, exit); err != nil {
			t.Fatal(err)
		}
	}
	runStep("build", checkpoint.StepPassed, 0, "built\n")
	runStep("unit-tests", checkpoint.StepFailed, 3, lines(1, 200)+"\x1b[31mFAIL\x1b[0m: TestX\n")
	runStep("lint", checkpoint.StepInterrupted, 130, "")

	out := filepath.Join(dir, "out", "report.xml")
	if err := os.Mkdir(filepath.Dir(out), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, []byte("old report"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, md, stderr := runMain(repoDir, map[string]string{"CKPT_SESSION": s.ID()}, "report", "--junit", out, "--markdown")
	if code != 0 || stderr != "" {
		t.Fatalf("ckpt report: exit %d, stderr %q; want 0 and nothing (failed steps are data, not an error)", code, stderr)
	}
	doc, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := parseJUnit(t, doc)
	suite := got.Suites[0]
	if suite.Name != s.ID() || suite.Tests != 3 || suite.Failures != 2 || suite.Errors != 0 {
		t.Errorf("testsuite name=%q tests=%d failures=%d errors=%d; want %s 3 2 0", suite.Name, suite.Tests, suite.Failures, suite.Errors, s.ID())
	}
	if len(suite.Cases) != 3 {
		t.Fatalf("%d test cases, want 3:\n%s", len(suite.Cases), doc)
	}
	f := suite.Cases[1].Failure
	if suite.Cases[1].Name != "unit-tests" || f == nil || f.Type != "failed" {
		t.Fatalf("unit-tests: %+v", suite.Cases[1])
	}
	if !strings.Contains(f.Text, "end of the log of attempt 1:\nline 152\n") || !strings.HasSuffix(f.Text, "line 200\nFAIL: TestX\n") ||
		strings.Contains(f.Text, "line 151\n") {
		t.Errorf("unit-tests' failure text is not the last 50 lines of its log, cleaned:\n%s", f.Text)
	}
	if f := suite.Cases[2].Failure; f == nil || f.Type != "interrupted" || !strings.Contains(f.Text, "no log was kept") {
		t.Errorf("lint: %+v", suite.Cases[2])
	}
	// Replaced atomically: no temporary file is left beside it, and it
	// keeps the mode of the file it replaced, as 'load -o' does.
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("report.xml: %v, %v; want mode 0644, the old file's", fi, err)
	}
	entries, err := os.ReadDir(filepath.Dir(out))
	if err != nil || len(entries) != 1 {
		t.Errorf("the output directory holds %v (%v), want report.xml alone", entries, err)
	}
	if !strings.HasPrefix(md, "### ckpt session "+s.ID()+": 1 passed, 1 failed, 1 interrupted\n") {
		t.Errorf("markdown on stdout starts %q", md[:min(len(md), 120)])
	}

	code, stdout, stderr := runMain(repoDir, nil, "report", s.ID(), "--junit", "-")
	if code != 0 || stderr != "" {
		t.Fatalf("ckpt report --junit -: exit %d, stderr %q", code, stderr)
	}
	if stdout != string(doc) {
		t.Errorf("--junit - wrote another report than --junit FILE:\n%s\n---\n%s", stdout, doc)
	}

	page := filepath.Join(dir, "out", "report.html")
	if code, stdout, stderr := runMain(repoDir, nil, "report", s.ID(), "--html", page, "--markdown"); code != 0 || stderr != "" || stdout != md {
		t.Fatalf("ckpt report --html FILE --markdown: exit %d, stderr %q, stdout %q; want 0, nothing and the markdown", code, stderr, stdout)
	}
	doc, err = os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runMain(repoDir, nil, "report", s.ID(), "--html", "-")
	if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "<!DOCTYPE html>") {
		t.Fatalf("ckpt report --html -: exit %d, stderr %q, stdout starts %q", code, stderr, stdout[:min(len(stdout), 40)])
	}
	for name, page := range map[string][]byte{"--html FILE": doc, "--html -": []byte(stdout)} {
		root := parseHTML(t, page)
		if got := textOf(root.find("h1")); !strings.Contains(got, s.ID()) {
			t.Errorf("%s: heading %q does not name the session", name, got)
		}
		if got := laneNames(root); !slices.Equal(got, []string{"ci-runner-1"}) {
			t.Errorf("%s: lanes %q, want one, ci-runner-1's", name, got)
		}
		if got := len(root.findAll(isBar)); got != 3 {
			t.Errorf("%s: %d attempts on the timeline, want 3", name, got)
		}
		var names []string
		for _, row := range root.findAll(func(n *htmlNode) bool { return n.tag == "tr" && strings.HasPrefix(n.attr["id"], "step-") }) {
			names = append(names, textOf(row.find("td")))
		}
		if !slices.Equal(names, []string{"build", "unit-tests", "lint"}) {
			t.Errorf("%s: the steps' table lists %q", name, names)
		}
		logs := root.findAll(func(n *htmlNode) bool { return n.tag == "pre" })
		if len(logs) != 1 || !strings.HasSuffix(textOf(logs[0]), "line 200\nFAIL: TestX") || strings.Contains(textOf(logs[0]), "line 151\n") {
			t.Errorf("%s: the log tails shown are %d, want unit-tests' last 50 lines", name, len(logs))
		}
	}

	missing := filepath.Join(dir, "no-such-dir", "report.xml")
	if code, _, stderr := runMain(repoDir, nil, "report", s.ID(), "--junit", missing); code != exitError || !strings.Contains(stderr, "does not exist") {
		t.Errorf("--junit into a missing directory: exit %d, stderr %q; want 1", code, stderr)
	}
}

// lines returns "line FROM\n" to "line TO\n".
func lines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.String()
}

// htmlNode is an element of an HTML page, or a text node (tag ""), as
// encoding/xml reads HTML when it is lenient: enough to check what a page
// holds where, apart from how the template wrote it.
type htmlNode struct {
	tag      string
	attr     map[string]string
	text     string
	children []*htmlNode
}

// parseHTML reads doc into a tree, failing t if elements do not nest.
func parseHTML(t *testing.T, doc []byte) *htmlNode {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict, d.AutoClose, d.Entity = false, xml.HTMLAutoClose, xml.HTMLEntity
	root := &htmlNode{tag: "#document"}
	stack := []*htmlNode{root}
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the page does not parse: %v", err)
		}
		top := stack[len(stack)-1]
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &htmlNode{tag: tok.Name.Local, attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.attr[a.Name.Local] = a.Value
			}
			top.children = append(top.children, n)
			stack = append(stack, n)
		case xml.EndElement:
			if top.tag != tok.Name.Local {
				t.Fatalf("the page closes <%s> in <%s>", tok.Name.Local, top.tag)
			}
			stack = stack[:len(stack)-1]
		case xml.CharData:
			top.children = append(top.children, &htmlNode{text: string(tok)})
		}
	}
	if len(stack) != 1 {
		t.Fatalf("the page leaves <%s> open", stack[len(stack)-1].tag)
	}
	return root
}

// findAll returns the elements under n that match, in document order.
func (n *htmlNode) findAll(match func(*htmlNode) bool) []*htmlNode {
	var out []*htmlNode
	for _, c := range n.children {
		if c.tag != "" && match(c) {
			out = append(out, c)
		}
		out = append(out, c.findAll(match)...)
	}
	return out
}

// find returns the first element under n with tag, or nil.
func (n *htmlNode) find(tag string) *htmlNode {
	if all := n.findAll(func(c *htmlNode) bool { return c.tag == tag }); len(all) > 0 {
		return all[0]
	}
	return nil
}

func (n *htmlNode) hasClass(c string) bool {
	return n != nil && slices.Contains(strings.Fields(n.attr["class"]), c)
}

// textOf returns the text of n and its descendants, as a browser's
// textContent; "" for nil.
func textOf(n *htmlNode) string {
	if n == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(n.text)
	for _, c := range n.children {
		b.WriteString(textOf(c))
	}
	return b.String()
}

// style reads an element's style attribute into its properties.
func style(n *htmlNode) map[string]string {
	out := map[string]string{}
	for decl := range strings.SplitSeq(n.attr["style"], ";") {
		if k, v, ok := strings.Cut(decl, ":"); ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out
}

func isBar(n *htmlNode) bool { return n.hasClass("bar") }

func isLane(n *htmlNode) bool { return n.hasClass("lane") }

// laneNames returns the names of a page's timeline lanes, top to bottom.
func laneNames(root *htmlNode) []string {
	var out []string
	for _, l := range root.findAll(isLane) {
		out = append(out, textOf(l.find("b")))
	}
	return out
}

// timelineAttempts are attempts of a fleet run from t0, as Attempts returns
// them: two named runners, and two processes that ran without a name.
func timelineAttempts(t0 time.Time) []checkpoint.Attempt {
	at := func(step string, n int, state string, exit int, runner string, pid int, start, d time.Duration) checkpoint.Attempt {
		return checkpoint.Attempt{Step: step, N: n, State: state, Exit: exit, Runner: runner, First: t0,
			Identity: checkpoint.Identity{Key: "0123456789abcdef0123", Command: []string{"run", step}},
			Owner:    &checkpoint.Owner{PID: pid, Host: "ci-7", Started: t0, Command: "ckpt queue"},
			Started:  t0.Add(start), Duration: d}
	}
	crashed := at("unit", 1, checkpoint.StepCrashed, -1, "runner-2", 11, 10*time.Second, 0)
	crashed.Note = "pid 11 on ci-7 (ckpt queue) stopped without recording an end: its claim is gone"
	return []checkpoint.Attempt{
		at("build", 1, checkpoint.StepPassed, 0, "runner-2", 11, 0, 10*time.Second),
		at("lint", 1, checkpoint.StepFailed, 2, "runner-10", 12, 0, 5*time.Second),
		crashed,
		at("unit", 2, checkpoint.StepPassed, 0, "runner-10", 12, 30*time.Second, 20*time.Second),
		at("soak", 1, checkpoint.StepRunning, -1, "", 42, 40*time.Second, 0),
		at("reboot", 1, checkpoint.StepCrashed, -1, "", 43, 45*time.Second, 0),
		at(`<script>alert("x")</script>`, 1, checkpoint.StepPassed, 0, "runner-2", 11, 50*time.Second, time.Second),
	}
}

// stepsOf returns the steps attempts make, as Steps would, in the order
// they first ran, with log as the log tail of those that did not pass.
func stepsOf(attempts []checkpoint.Attempt, log string) []reportStep {
	var out []reportStep
	index := map[string]int{}
	for _, a := range attempts {
		i, ok := index[a.Step]
		if !ok {
			i = len(out)
			index[a.Step] = i
			out = append(out, reportStep{})
		}
		out[i].Step = a.View()
		if failing(a.State) && log != "" {
			out[i].log = logTail{attempt: a.N, text: log}
		} else {
			out[i].log = logTail{}
		}
	}
	return out
}

func TestHTMLReport(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	attempts := timelineAttempts(t0)
	steps := stepsOf(attempts, "<b>lint</b> & \"error\"\nsecond line")
	h := &checkpoint.Header{Title: "nightly <run> & more", Key: "c0ffee", Created: t0.Add(-time.Minute)}
	page, err := htmlReport("nightly-abcdefghijkl", h, steps, attempts, t0.Add(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Self-contained and inert: nothing fetched, nothing run, and what a
	// step is named is text.
	for _, bad := range []string{"<script", "http:", "https:", "src=", "url(", "@import", "<link", "<img", "<iframe", "javascript:"} {
		if bytes.Contains(bytes.ToLower(page), []byte(bad)) {
			t.Errorf("the page holds %q", bad)
		}
	}
	root := parseHTML(t, page)

	if got := textOf(root.find("title")); got != "ckpt report: nightly-abcdefghijkl" {
		t.Errorf("<title> = %q", got)
	}
	header := root.find("header")
	if got := textOf(header.find("h1")); got != "ckpt session nightly-abcdefghijkl" {
		t.Errorf("<h1> = %q", got)
	}
	if got := textOf(header.findAll(func(n *htmlNode) bool { return n.hasClass("title") })[0]); got != "nightly <run> & more" {
		t.Errorf("title = %q", got)
	}
	meta := map[string]string{}
	for _, d := range header.find("dl").findAll(func(n *htmlNode) bool { return n.tag == "div" }) {
		meta[textOf(d.find("dt"))] = textOf(d.find("dd"))
	}
	want := map[string]string{
		"key": "c0ffee", "created": "2026-03-04 05:05:00 UTC", "ran": "2026-03-04 05:06:00 UTC, for 1m0s",
		"runners": "4", "attempts": "7", "report written": "2026-03-04 05:07:00 UTC",
	}
	if fmt.Sprint(meta) != fmt.Sprint(want) {
		t.Errorf("the header says %v, want %v", meta, want)
	}
	var chips []string
	for _, li := range header.findAll(func(n *htmlNode) bool { return n.tag == "li" }) {
		chips = append(chips, li.attr["class"]+": "+textOf(li))
	}
	if got, want := strings.Join(chips, "; "), "chip: 6 steps; chip passed: 3 passed; chip failed: 1 failed; chip crashed: 1 crashed; chip running: 1 running"; got != want {
		t.Errorf("counts: %s\nwant:   %s", got, want)
	}

	// The lanes: named runners in their natural order, after the processes
	// that ran without a name.
	if got, want := laneNames(root), []string{"ci-7 pid 42", "ci-7 pid 43", "runner-2", "runner-10"}; !slices.Equal(got, want) {
		t.Fatalf("lanes %q, want %q", got, want)
	}
	type bar struct{ class, style, text string }
	wantBars := [][]bar{
		{{"bar running", "left:66.667%;width:33.333%;top:3px", "soak"}},
		{{"bar crashed marker", "left:75.000%;width:0.600%;top:3px", "✕ crashed: reboot"}},
		{
			{"bar passed", "left:0.000%;width:16.667%;top:3px", "build"},
			{"bar crashed", "left:16.667%;width:33.333%;top:3px", "crashed: unit"},
			{"bar passed", "left:83.333%;width:1.667%;top:3px", `<script>alert("x")</script>`},
		},
		{
			{"bar failed", "left:0.000%;width:8.333%;top:3px", "lint"},
			{"bar passed", "left:50.000%;width:33.333%;top:3px", "unit"},
		},
	}
	rows := map[string]string{} // step-N: the step's name in the table
	for _, tr := range root.findAll(func(n *htmlNode) bool { return n.tag == "tr" && n.attr["id"] != "" }) {
		rows[tr.attr["id"]] = textOf(tr.find("code"))
	}
	for i, lane := range root.findAll(isLane) {
		if got := style(lane.findAll(func(n *htmlNode) bool { return n.hasClass("track") })[0])["height"]; got != "25px" {
			t.Errorf("lane %d is %s high, want 25px: one row", i, got)
		}
		bars := lane.findAll(isBar)
		var got []bar
		for _, b := range bars {
			got = append(got, bar{b.attr["class"], b.attr["style"], textOf(b)})
			step := strings.TrimPrefix(textOf(b), "✕ ")
			step = strings.TrimPrefix(step, "crashed: ")
			if href := b.attr["href"]; rows[strings.TrimPrefix(href, "#")] != step {
				t.Errorf("the bar of %s links to %q, the row of %q", step, href, rows[strings.TrimPrefix(href, "#")])
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(wantBars[i]) {
			t.Errorf("lane %d's bars:\n%q\nwant\n%q", i, got, wantBars[i])
		}
	}
	tips := map[string]string{}
	for _, b := range root.findAll(isBar) {
		tips[textOf(b)] = b.attr["title"]
	}
	for label, want := range map[string]string{
		"lint": "step lint\nattempt 1: failed\nexit status: 2\nduration: 5s\nstarted: 2026-03-04 05:06:00 UTC\nrunner: runner-10\nkey: 0123456789ab…",
		"crashed: unit": "step unit\nattempt 1: crashed\nexit status: none\nduration: unknown: crashed; the next attempt started 20s later\n" +
			"started: 2026-03-04 05:06:10 UTC\nrunner: runner-2\nkey: 0123456789ab…\n" +
			"note: pid 11 on ci-7 (ckpt queue) stopped without recording an end: its claim is gone",
		"soak":              "step soak\nattempt 1: running\nexit status: none\nduration: running for 20s\nstarted: 2026-03-04 05:06:40 UTC\nrunner: ci-7 pid 42\nkey: 0123456789ab…",
		"✕ crashed: reboot": "step reboot\nattempt 1: crashed\nexit status: none\nduration: unknown: crashed\nstarted: 2026-03-04 05:06:45 UTC\nrunner: ci-7 pid 43\nkey: 0123456789ab…",
	} {
		if tips[label] != want {
			t.Errorf("tooltip of %s:\n%s\nwant\n%s", label, tips[label], want)
		}
	}
	var ticks []string
	for _, s := range root.find("main").findAll(func(n *htmlNode) bool { return n.hasClass("axis") })[0].findAll(func(n *htmlNode) bool { return n.tag == "span" }) {
		ticks = append(ticks, style(s)["left"]+" "+textOf(s))
	}
	if got, want := strings.Join(ticks, ", "), "0.000% 0s, 16.667% 10s, 33.333% 20s, 50.000% 30s, 66.667% 40s, 83.333% 50s, 100.000% 1m00s"; got != want {
		t.Errorf("axis: %s\nwant: %s", got, want)
	}

	// The table: one row per step, and the log tail of each that did not
	// pass in a <details> after it.
	var table []string
	for _, tr := range root.find("tbody").findAll(func(n *htmlNode) bool { return n.tag == "tr" }) {
		if tr.hasClass("log") {
			table = append(table, "  log: "+textOf(tr.find("summary"))+" | "+textOf(tr.find("pre")))
			continue
		}
		var cells []string
		for _, td := range tr.findAll(func(n *htmlNode) bool { return n.tag == "td" }) {
			cells = append(cells, textOf(td))
		}
		table = append(table, strings.Join(cells, " | "))
	}
	wantTable := []string{
		"build | passed | 0 | 1 | 10s | runner-2 | 0123456789ab…",
		"lint | failed | 2 | 1 | 5s | runner-10 | 0123456789ab…",
		"  log: failed with exit status 2 (attempt 1) | <b>lint</b> & \"error\"\nsecond line",
		"unit | passed | 0 | 2 | 20s | runner-10 | 0123456789ab…",
		"soak | running | - | 1 | - | ci-7 pid 42 | 0123456789ab…",
		"reboot | crashed | - | 1 | - | ci-7 pid 43 | 0123456789ab…",
		"  log: crashed: pid 11 on ci-7 (ckpt queue) stopped without recording an end: its claim is gone (attempt 1) | <b>lint</b> & \"error\"\nsecond line",
		`<script>alert("x")</script> | passed | 0 | 1 | 1s | runner-2 | 0123456789ab…`,
	}
	// reboot's note is the one its attempt carries: none in this data.
	wantTable[6] = "  log: crashed (attempt 1) | <b>lint</b> & \"error\"\nsecond line"
	if strings.Join(table, "\n") != strings.Join(wantTable, "\n") {
		t.Errorf("the steps' table:\n%s\nwant\n%s", strings.Join(table, "\n"), strings.Join(wantTable, "\n"))
	}
	if key := root.find("tbody").findAll(func(n *htmlNode) bool {
		return n.tag == "code" && n.attr["title"] != "" && n.attr["title"] != "run build"
	}); len(key) == 0 || key[0].attr["title"] != "0123456789abcdef0123" {
		t.Errorf("a shortened key does not carry the whole key in its tooltip")
	}
}

// TestHTMLReportOverlap: attempts of one runner name that ran at once (two
// processes given the same --runner) go in rows of their own, so that
// neither hides the other.
func TestHTMLReportOverlap(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	var attempts []checkpoint.Attempt
	for i, start := range []time.Duration{0, 2 * time.Second, 4 * time.Second, 6 * time.Second} {
		attempts = append(attempts, checkpoint.Attempt{Step: fmt.Sprintf("s%d", i), N: 1, State: checkpoint.StepPassed, Runner: "same",
			Started: t0.Add(start), Duration: 5 * time.Second})
	}
	page, err := htmlReport("overlap-abcdefghijkl", nil, stepsOf(attempts, ""), attempts, t0)
	if err != nil {
		t.Fatal(err)
	}
	root := parseHTML(t, page)
	lanes := root.findAll(isLane)
	if len(lanes) != 1 {
		t.Fatalf("%d lanes, want 1", len(lanes))
	}
	var tops []string
	for _, b := range lanes[0].findAll(isBar) {
		tops = append(tops, style(b)["top"])
	}
	// s0 0-5s, s1 2-7s, s2 4-9s (after s0? no: s0 ends at 5), s3 6-11s (after s0).
	if got := strings.Join(tops, " "); got != "3px 25px 47px 3px" {
		t.Errorf("rows of the bars: %s, want 3px 25px 47px 3px", got)
	}
	if got := style(lanes[0].findAll(func(n *htmlNode) bool { return n.hasClass("track") })[0])["height"]; got != "69px" {
		t.Errorf("the lane is %s high, want 69px: three rows", got)
	}
	if got := textOf(root.find("dl")); !strings.Contains(got, "keynone") {
		t.Errorf("a session without a header and steps with no key: the header says %q", got)
	}
}

func TestHTMLReportEmpty(t *testing.T) {
	page, err := htmlReport("empty-abcdefghijkl", &checkpoint.Header{}, nil, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	root := parseHTML(t, page)
	got := textOf(root.find("main"))
	for _, want := range []string{"No attempt is recorded.", "No step is recorded."} {
		if !strings.Contains(got, want) {
			t.Errorf("the page of an empty session does not say %q:\n%s", want, got)
		}
	}
	// Steps recorded before run records have no attempts to draw.
	legacy := []reportStep{{Step: checkpoint.Step{Name: "old", State: checkpoint.StepPassed, Attempts: 1, Duration: time.Second}}}
	if page, err = htmlReport("legacy-abcdefghijkl", nil, legacy, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	root = parseHTML(t, page)
	if got := textOf(root.find("tbody")); !strings.Contains(got, "old") || !strings.Contains(textOf(root.find("main")), "No attempt is recorded.") {
		t.Errorf("a step without attempts: table %q", got)
	}
}

var reportHTMLDir = flag.String("report.html", "", "write the pages of TestHTMLReportShapes into `DIR`, to look at")

// TestHTMLReportShapes lays out the runs the page must show well: one
// runner that ran 200 steps one after another, and 8 runners that shared
// them. Every bar lies within the timeline, and no two bars of a row
// overlap. With -report.html DIR, the pages are kept there.
func TestHTMLReportShapes(t *testing.T) {
	t0 := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	for _, runners := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d runners", runners), func(t *testing.T) {
			var attempts []checkpoint.Attempt
			free := make([]time.Time, runners)
			for i := range free {
				free[i] = t0.Add(time.Duration(i) * 300 * time.Millisecond)
			}
			for i := range 200 {
				r := slices.IndexFunc(free, func(f time.Time) bool { return !slices.ContainsFunc(free, f.After) })
				d := time.Duration(1+(i*7919)%23) * time.Second
				a := checkpoint.Attempt{Step: fmt.Sprintf("TestPackage/case_%03d", i), N: 1, State: checkpoint.StepPassed,
					Runner: fmt.Sprintf("runner-%d", r+1), Started: free[r], Duration: d}
				switch i % 37 {
				case 5:
					a.State, a.Exit = checkpoint.StepFailed, 1
				case 11:
					a.State, a.Exit, a.Duration = checkpoint.StepCrashed, -1, 0
					retry := a
					retry.N, retry.State, retry.Exit, retry.Duration = 2, checkpoint.StepPassed, 0, d
					// The runner is restarted, and runs the step again.
					retry.Started = free[r].Add(d / 2)
					attempts = append(attempts, a, retry)
					free[r] = retry.Started.Add(d + 50*time.Millisecond)
					continue
				}
				attempts = append(attempts, a)
				free[r] = free[r].Add(d + 50*time.Millisecond)
			}
			slices.SortFunc(attempts, func(a, b checkpoint.Attempt) int { return a.Started.Compare(b.Started) })
			steps := stepsOf(attempts, "boom")
			page, err := htmlReport(fmt.Sprintf("shape%d-abcdefghijkl", runners), &checkpoint.Header{Title: "shape", Key: "abc"}, steps, attempts, t0)
			if err != nil {
				t.Fatal(err)
			}
			if *reportHTMLDir != "" {
				if err := os.WriteFile(filepath.Join(*reportHTMLDir, fmt.Sprintf("shape-%d.html", runners)), page, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			root := parseHTML(t, page)
			lanes := root.findAll(isLane)
			if len(lanes) != runners {
				t.Fatalf("%d lanes, want %d", len(lanes), runners)
			}
			bars := 0
			for _, lane := range lanes {
				rows := map[string][][2]float64{}
				for _, b := range lane.findAll(isBar) {
					bars++
					st := style(b)
					left, err1 := strconv.ParseFloat(strings.TrimSuffix(st["left"], "%"), 64)
					width, err2 := strconv.ParseFloat(strings.TrimSuffix(st["width"], "%"), 64)
					if err1 != nil || err2 != nil || left < 0 || width <= 0 || left+width > 100+minBarPct {
						t.Errorf("bar %q lies at %s, width %s: outside the timeline", textOf(b), st["left"], st["width"])
					}
					rows[st["top"]] = append(rows[st["top"]], [2]float64{left, left + width})
				}
				for top, spans := range rows {
					for i := 1; i < len(spans); i++ {
						// Positions are rounded to 0.001%: a bar may end where the next starts.
						if spans[i][0] < spans[i-1][1]-0.0015 {
							t.Errorf("lane %s, row at %s: bars at %.3f%% and %.3f%% overlap", textOf(lane.find("b")), top, spans[i-1][0], spans[i][0])
						}
					}
				}
				if len(rows) != 1 {
					t.Errorf("lane %s has %d rows, want 1: a runner runs one step at a time", textOf(lane.find("b")), len(rows))
				}
			}
			if bars != len(attempts) {
				t.Errorf("%d bars, want one per attempt, %d", bars, len(attempts))
			}
			if got := len(root.find("tbody").findAll(func(n *htmlNode) bool { return n.tag == "tr" && !n.hasClass("log") })); got != 200 {
				t.Errorf("%d rows in the steps' table, want 200", got)
			}
		})
	}
}

func TestTickStep(t *testing.T) {
	tests := []struct {
		span   time.Duration
		step   time.Duration
		labels string
	}{
		{3 * time.Millisecond, time.Millisecond, "0.000s 0.001s 0.002s 0.003s"},
		{450 * time.Millisecond, 100 * time.Millisecond, "0.0s 0.1s 0.2s 0.3s 0.4s"},
		{60 * time.Second, 10 * time.Second, "0s 10s 20s 30s 40s 50s 1m00s"},
		{100 * time.Second, 15 * time.Second, "0s 15s 30s 45s 1m00s 1m15s 1m30s"},
		{25 * time.Minute, 5 * time.Minute, "0s 5m 10m 15m 20m 25m"},
		{90 * time.Minute, 15 * time.Minute, "0s 15m 30m 45m 1h00m 1h15m 1h30m"},
		{30 * time.Hour, 6 * time.Hour, "0s 6h 12h 18h 1d00h 1d06h"},
		{40 * 24 * time.Hour, 8 * 24 * time.Hour, "…"},
	}
	for _, tt := range tests {
		step := tickStep(tt.span)
		if step != tt.step {
			t.Errorf("tickStep(%s) = %s, want %s", tt.span, step, tt.step)
			continue
		}
		if n := tt.span / step; n > 8 {
			t.Errorf("tickStep(%s) = %s: %d ticks", tt.span, step, n+1)
		}
		if strings.HasSuffix(tt.labels, "…") {
			continue
		}
		var labels []string
		for d := time.Duration(0); d <= tt.span; d += step {
			labels = append(labels, tickLabel(d, step))
		}
		if got := strings.Join(labels, " "); got != tt.labels {
			t.Errorf("labels over %s: %s, want %s", tt.span, got, tt.labels)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	want := []string{"", "ci-7 pid 9", "ci-7 pid 42", "node", "node-01", "node-2", "node-10", "node-10a", "node-10b", "node-b"}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, naturalCompare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted: %q\nwant:   %q", got, want)
	}
}

func TestHTMLReportManyFailures(t *testing.T) {
	var steps []reportStep
	for i := range maxDetails + 7 {
		steps = append(steps, reportStep{Step: checkpoint.Step{Name: fmt.Sprintf("s%d", i), State: checkpoint.StepFailed, Exit: 1, Attempts: 1},
			log: logTail{attempt: 1, text: "boom"}})
	}
	page, err := htmlReport("many-abcdefghijkl", nil, steps, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	root := parseHTML(t, page)
	if n := len(root.findAll(func(n *htmlNode) bool { return n.tag == "details" })); n != maxDetails {
		t.Errorf("%d <details> blocks, want at most %d", n, maxDetails)
	}
	if n := len(root.find("tbody").findAll(func(n *htmlNode) bool { return n.tag == "tr" && !n.hasClass("log") })); n != len(steps) {
		t.Errorf("%d rows in the steps' table, want one per step, %d", n, len(steps))
	}
	if got := textOf(root.find("main")); !strings.Contains(got, "7 more steps did not pass: 'ckpt logs many-abcdefghijkl NAME' prints their logs.") {
		t.Errorf("the page does not say how many log tails were left out")
	}
}
