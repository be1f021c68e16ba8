package cmd

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

type reportOptions struct {
	id       string
	junit    string // a file, or "-" for stdout; "" for none
	html     string // a file, or "-" for stdout; "" for none
	markdown bool
}

// check returns a usage error unless o asks for at least one report and
// at most one of them on stdout.
func (o reportOptions) check() error {
	if o.junit == "" && o.html == "" && !o.markdown {
		return usageError{errors.New("nothing to write: pick --junit FILE, --html FILE, --markdown, or more than one")}
	}
	var stdout []string
	if o.junit == "-" {
		stdout = append(stdout, "--junit -")
	}
	if o.html == "-" {
		stdout = append(stdout, "--html -")
	}
	if o.markdown {
		stdout = append(stdout, "--markdown")
	}
	switch len(stdout) {
	case 0, 1:
		return nil
	case 2:
		return usageError{fmt.Errorf("%s and %s would both write to stdout: give %s a file", stdout[0], stdout[1], strings.TrimSuffix(stdout[0], " -"))}
	}
	return usageError{errors.New("--junit -, --html - and --markdown would all write to stdout: give --junit and --html files")}
}

func (a *app) newReportCommand() *cobra.Command {
	var o reportOptions
	c := &cobra.Command{
		Use:   "report [ID] [--junit FILE] [--html FILE] [--markdown]",
		Short: "Write a session's steps as a JUnit XML report, an HTML page or a markdown summary",
		Long: `Write what 'ckpt step' and 'ckpt queue' recorded in a session as a report
for CI: with --junit FILE, a JUnit XML file that test dashboards read; with
--html FILE, a page to open in a browser or keep as a CI artifact; with
--markdown, a GitHub-flavoured markdown summary on stdout, for
$GITHUB_STEP_SUMMARY. Give any of them. Without ID, the session is
$CKPT_SESSION.

--junit writes one <testsuite> named after the session, with one
<testcase> per step, in the order the steps first ran, and the duration
of each step's last attempt. A failed, interrupted or crashed step carries
a <failure> with its exit status and the tail of its latest log (the last
50 lines, at most 4 KiB); a step still running is an <error>. A step's key
and command line are its <properties>. FILE '-' is stdout; a regular FILE
is replaced atomically, as with 'ckpt load -o', and a device or FIFO is
written into.

--html writes one self-contained HTML file (no scripts, fonts or images
fetched from anywhere): the session's id, title, key and how many steps
ended in each state; a timeline with one lane per runner (the --runner of
'ckpt queue', else the host and pid of the process that ran the step),
each attempt a bar coloured by how it ended, with the step, attempt, state,
exit status and duration in its tooltip; and the steps' table, with the tail
of the log of each step that failed, was interrupted or crashed. A crashed
attempt is drawn up to the start of the step's next attempt, or as a mark
where it started. FILE is written as with --junit.

--markdown prints a heading with the session id and how many steps ended
in each state, a table of the steps, and the tail of the log of each
step that failed, was interrupted or crashed, in a collapsed block.

Terminal escape sequences (colours) are taken out of the log tails, and
other control characters, which XML cannot hold, are replaced by U+FFFD.

The report is data: report exits 0 once it is written, whatever states the
steps ended in. Use 'ckpt steps --json' to decide whether a run passed.`,
		Example: `  ckpt report "$S" --junit ckpt-report.xml
  ckpt report --junit results/ckpt.xml --markdown >> "$GITHUB_STEP_SUMMARY"
  ckpt report "$S" --junit - | xmllint --format -
  ckpt report "$S" --html ckpt-report.html`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if err := o.check(); err != nil {
				return err
			}
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			o.id = id
			return a.runReport(c.Context(), o)
		},
	}
	c.Flags().StringVar(&o.junit, "junit", "", "write a JUnit XML report to `FILE` ('-' for stdout), atomically")
	c.Flags().StringVar(&o.html, "html", "", "write an HTML page with a timeline of the run to `FILE` ('-' for stdout), atomically")
	c.Flags().BoolVar(&o.markdown, "markdown", false, "print a GitHub-flavoured markdown summary on stdout")
	return c
}

// runReport writes the reports o asks for.
func (a *app) runReport(ctx context.Context, o reportOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	steps, err := s.Steps(ctx)
	if err != nil {
		return err
	}
	rs := make([]reportStep, len(steps))
	for i, st := range steps {
		rs[i].Step = st
		if !failing(st.State) {
			continue
		}
		if rs[i].log, err = readLogTail(ctx, s, st.Name); err != nil {
			return err
		}
	}
	id := s.ID()
	if o.junit != "" {
		doc, err := junitReport(id, rs)
		if err != nil {
			return err
		}
		if err := a.writeReport(o.junit, bytes.NewReader(doc)); err != nil {
			return err
		}
	}
	if o.html != "" {
		page, err := a.htmlPage(ctx, s, rs)
		if err != nil {
			return err
		}
		if err := a.writeReport(o.html, bytes.NewReader(page)); err != nil {
			return err
		}
	}
	if o.markdown {
		if err := a.printReport(strings.NewReader(markdownReport(id, rs))); err != nil {
			return fmt.Errorf("write markdown: %w", err)
		}
	}
	return nil
}

// writeReport writes a finished report to stdout ("-") or to the file
// path, as 'load -o' writes a payload.
func (a *app) writeReport(path string, r io.Reader) error {
	if path == "-" {
		if err := a.printReport(r); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		return nil
	}
	return writeOutput(path, r)
}

// reportStep is a step as a report shows it: its record, and for a step
// that did not pass, the tail of its latest log.
type reportStep struct {
	checkpoint.Step
	log logTail
}

// failing reports whether a step in state ended without passing.
func failing(state string) bool {
	switch state {
	case checkpoint.StepFailed, checkpoint.StepInterrupted, checkpoint.StepCrashed:
		return true
	}
	return false
}

// Bounds of a log tail in a report: enough to see why a step failed,
// small enough that a report of many failures stays readable (GitHub
// caps a step summary at 1 MiB).
const (
	tailBytes = 4 << 10
	tailLines = 50
)

// logTail is the end of an attempt's log, cleaned for XML and markdown.
type logTail struct {
	attempt int    // the attempt the log is of; 0 when there is no log
	text    string // its last lines, without a final newline
	cut     bool   // whether text is less than the whole log
}

// readLogTail reads the tail of the latest log of step name; a step
// without a log has an empty logTail.
func readLogTail(ctx context.Context, s *storage.Session, name string) (logTail, error) {
	r, n, err := s.StepLog(ctx, name, 0)
	if errors.Is(err, storage.ErrNoLog) {
		return logTail{}, nil
	}
	if err != nil {
		return logTail{}, err
	}
	text, cut, err := tail(r, tailBytes, tailLines)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return logTail{}, fmt.Errorf("session %s: step %s: read log: %w", s.ID(), name, err)
	}
	return logTail{attempt: n, text: text, cut: cut}, nil
}

// tail reads r to its end and returns its last lines: at most maxLines
// and about maxBytes, cleaned with cleanLog. cut says whether anything
// was left out. A line cut in two by the byte bound is dropped, unless it
// is all there is.
func tail(r io.Reader, maxBytes, maxLines int) (text string, cut bool, err error) {
	// One byte more than the tail, to tell whether its first line is whole.
	w := &tailWriter{max: maxBytes + 1}
	if _, err := io.Copy(w, r); err != nil {
		return "", false, err
	}
	b := w.bytes()
	cut = w.total > int64(maxBytes)
	if cut {
		before := b[0]
		b = b[1:]
		if i := bytes.IndexByte(b, '\n'); before != '\n' && i >= 0 && i < len(b)-1 {
			b = b[i+1:]
		}
		for len(b) > 0 && !utf8.RuneStart(b[0]) {
			b = b[1:]
		}
	}
	text = strings.TrimSuffix(cleanLog(string(b)), "\n")
	if lines := strings.Split(text, "\n"); len(lines) > maxLines {
		text, cut = strings.Join(lines[len(lines)-maxLines:], "\n"), true
	}
	return text, cut, nil
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max   int
	buf   []byte
	total int64
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.total += int64(len(p))
	if len(p) >= w.max {
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
		return len(p), nil
	}
	if len(w.buf)+len(p) > 2*w.max {
		// Compact, so that buf stays within twice max.
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-(w.max-len(p)):]...)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

func (w *tailWriter) bytes() []byte {
	if len(w.buf) > w.max {
		return w.buf[len(w.buf)-w.max:]
	}
	return w.buf
}

// cleanLog makes a log fit XML 1.0 and a code block: terminal escape
// sequences (ESC [ ... m colours, ESC ] ... titles) are taken out, CRLF and
// lone CR become LF, invalid UTF-8 and every other control character but
// tab and LF become U+FFFD, as do the noncharacters XML cannot hold.
func cleanLog(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == 0x1b:
			i += escapeLen(s[i:])
			continue
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				i++
				continue
			}
			b.WriteByte('\n')
		case r == '\t' || r == '\n':
			b.WriteRune(r)
		case r == utf8.RuneError && size == 1, r < 0x20, 0x7f <= r && r <= 0x9f, r == 0xfffe, r == 0xffff:
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// escapeLen returns the length of the terminal escape sequence at the
// start of s, which starts with ESC (ECMA-48): a control sequence (ESC [
// parameters, intermediates and a final byte), a control string (ESC ] and
// the like, up to BEL or ESC \), or ESC, intermediates and a final byte. A
// sequence cut short by the end of s runs to the end.
func escapeLen(s string) int {
	if len(s) < 2 {
		return len(s)
	}
	switch s[1] {
	case '[':
		for i := 2; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x3f {
				if 0x40 <= c && c <= 0x7e {
					return i + 1
				}
				return i // malformed: drop what came before c only
			}
		}
		return len(s)
	case ']', 'P', 'X', '^', '_':
		for i := 2; i < len(s); i++ {
			switch {
			case s[i] == 0x07:
				return i + 1
			case s[i] == 0x1b && i+1 < len(s) && s[i+1] == '\\':
				return i + 2
			}
		}
		return len(s)
	}
	i := 1
	for i < len(s) && 0x20 <= s[i] && s[i] <= 0x2f {
		i++
	}
	if i < len(s) && 0x30 <= s[i] && s[i] <= 0x7e {
		return i + 1
	}
	return 1 // a lone ESC
}

// counts returns how many steps are in each state, in the order states
// are named in reports.
func counts(steps []reportStep) []stateCount {
	out := []stateCount{
		{state: checkpoint.StepPassed}, {state: checkpoint.StepFailed}, {state: checkpoint.StepInterrupted},
		{state: checkpoint.StepCrashed}, {state: checkpoint.StepRunning},
	}
	for _, st := range steps {
		for i := range out {
			if out[i].state == st.State {
				out[i].n++
			}
		}
	}
	return out
}

type stateCount struct {
	state string
	n     int
}

// seconds renders d as JUnit times are: seconds, to the millisecond.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%.3f", d.Seconds())
}

// failureMessage says in one line how a step that did not pass ended.
func failureMessage(st checkpoint.Step) string {
	var msg string
	switch {
	case st.State == checkpoint.StepCrashed && st.Note != "":
		msg = "crashed: " + oneLine(st.Note, 300)
	case st.Exit >= 0:
		msg = fmt.Sprintf("%s with exit status %d", st.State, st.Exit)
	default:
		msg = st.State
	}
	if st.Attempts > 0 {
		msg += fmt.Sprintf(" (attempt %d)", st.Attempts)
	}
	return msg
}

// The JUnit XML that junitReport writes: the subset of the format that
// Jenkins, GitLab and GitHub actions read.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Errors   int          `xml:"errors,attr"`
		Time     string       `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name     string      `xml:"name,attr"`
		Tests    int         `xml:"tests,attr"`
		Failures int         `xml:"failures,attr"`
		Errors   int         `xml:"errors,attr"`
		Skipped  int         `xml:"skipped,attr"`
		Time     string      `xml:"time,attr"`
		Cases    []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name       string        `xml:"name,attr"`
		Classname  string        `xml:"classname,attr"`
		Time       string        `xml:"time,attr"`
		Properties *junitProps   `xml:"properties"`
		Failure    *junitFailure `xml:"failure"`
		Error      *junitFailure `xml:"error"`
	}
	junitProps struct {
		Props []junitProp `xml:"property"`
	}
	junitProp struct {
		Name  string `xml:"name,attr"`
		Value string `xml:"value,attr"`
	}
	junitFailure struct {
		Message string `xml:"message,attr"`
		Type    string `xml:"type,attr"`
		// Text is written as it is: xmlText escapes it, leaving its
		// newlines as they are (encoding/xml would write each as &#xA;).
		Text string `xml:",innerxml"`
	}
)

// junitReport renders steps as a JUnit XML report of session id: one test
// suite, one test case per step.
func junitReport(id string, steps []reportStep) ([]byte, error) {
	suite := junitSuite{Name: id, Tests: len(steps), Cases: make([]junitCase, 0, len(steps))}
	var total time.Duration
	for _, st := range steps {
		total += st.Duration
		tc := junitCase{Name: st.Name, Classname: "ckpt." + id, Time: seconds(st.Duration)}
		var props []junitProp
		if st.Key != "" {
			props = append(props, junitProp{Name: "key", Value: st.Key})
		}
		if len(st.Command) > 0 {
			props = append(props, junitProp{Name: "command", Value: shellQuote(st.Command)})
		}
		if props != nil {
			tc.Properties = &junitProps{props}
		}
		switch {
		case st.State == checkpoint.StepRunning:
			suite.Errors++
			tc.Error = &junitFailure{Message: "still running", Type: checkpoint.StepRunning}
		case failing(st.State):
			suite.Failures++
			tc.Failure = &junitFailure{Message: failureMessage(st.Step), Type: st.State, Text: xmlText(failureText(st))}
		}
		suite.Cases = append(suite.Cases, tc)
	}
	suite.Time = seconds(total)
	doc := junitSuites{Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Time: suite.Time,
		Suites: []junitSuite{suite}}
	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	enc := xml.NewEncoder(&buf)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("render junit report: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// xmlText escapes s as XML character data, after cleaning it with
// cleanLog so that it holds only characters XML 1.0 allows.
func xmlText(s string) string {
	return xmlEscaper.Replace(cleanLog(s))
}

var xmlEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// failureText is the body of a failing step's <failure>: how it ended,
// then the tail of its latest log.
func failureText(st reportStep) string {
	var b strings.Builder
	b.WriteString(failureMessage(st.Step))
	b.WriteString("\n")
	if st.Note != "" && st.State != checkpoint.StepCrashed {
		fmt.Fprintf(&b, "note: %s\n", oneLine(st.Note, 300))
	}
	b.WriteString(logHeading(st.log))
	b.WriteString("\n")
	if st.log.attempt > 0 && st.log.text != "" {
		b.WriteString(st.log.text)
		b.WriteString("\n")
	}
	return b.String()
}

// logHeading says what part of which log a tail is.
func logHeading(l logTail) string {
	switch {
	case l.attempt == 0:
		return "no log was kept"
	case l.text == "":
		return fmt.Sprintf("the log of attempt %d is empty", l.attempt)
	case l.cut:
		return fmt.Sprintf("end of the log of attempt %d:", l.attempt)
	}
	return fmt.Sprintf("log of attempt %d:", l.attempt)
}

// maxDetails bounds the log tails a markdown summary shows, so that it
// stays within GitHub's 1 MiB step summary limit.
const maxDetails = 100

// markdownReport renders steps as a GitHub-flavoured markdown summary of
// session id: a heading with the counts, a table, and the log tail of each
// step that did not pass.
func markdownReport(id string, steps []reportStep) string {
	var w strings.Builder
	var parts []string
	for _, c := range counts(steps) {
		if c.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c.n, c.state))
		}
	}
	if parts == nil {
		parts = []string{"no steps"}
	}
	// Ids are lowercase letters, digits, '-', '_' and '.': only '_' could
	// be read as markup.
	fmt.Fprintf(&w, "### ckpt session %s: %s\n", strings.ReplaceAll(id, "_", `\_`), strings.Join(parts, ", "))
	if len(steps) == 0 {
		return w.String()
	}
	w.WriteString("\n| step | state | exit | attempts | duration |\n|---|---|---|--:|--:|\n")
	for _, st := range steps {
		exit, dur := "-", "-"
		if st.Exit >= 0 && st.State != checkpoint.StepRunning {
			exit = fmt.Sprint(st.Exit)
		}
		if st.State != checkpoint.StepRunning {
			dur = duration(st.Duration)
		}
		fmt.Fprintf(&w, "| %s | %s | %s | %d | %s |\n", markdownCell(st.Name), st.State, exit, st.Attempts, dur)
	}
	shown, left := 0, 0
	for _, st := range steps {
		if !failing(st.State) {
			continue
		}
		if shown == maxDetails {
			left++
			continue
		}
		shown++
		fmt.Fprintf(&w, "\n<details><summary><code>%s</code> %s</summary>\n\n", html.EscapeString(st.Name),
			html.EscapeString(failureMessage(st.Step)))
		if st.Note != "" && st.State != checkpoint.StepCrashed {
			fmt.Fprintf(&w, "%s\n\n", markdownText(oneLine(st.Note, 300)))
		}
		if st.log.attempt == 0 || st.log.text == "" {
			fmt.Fprintf(&w, "%s.\n", logHeading(st.log))
		} else {
			fmt.Fprintf(&w, "%s\n\n", logHeading(st.log))
			fence := strings.Repeat("`", max(3, longestRun(st.log.text, '`')+1))
			fmt.Fprintf(&w, "%s\n%s\n%s\n", fence, st.log.text, fence)
		}
		w.WriteString("\n</details>\n")
	}
	if left > 0 {
		fmt.Fprintf(&w, "\n%d more steps did not pass: 'ckpt logs ID NAME' prints their logs.\n", left)
	}
	return w.String()
}

// markdownCell renders s as an inline code span for a table cell: delimited
// by a backtick run longer than any in s, padded with a space when s starts
// or ends with a backtick, and with its pipes escaped, the one escape GFM
// reads inside a code span in a table, so that they do not split the cell.
// (A backslash right before a pipe then shows doubled: GFM has no way to
// write that pair in a code span in a table.) A code span also keeps
// GitHub from reading @names, #numbers and :emoji: in a step name.
// Control characters and bidirectional overrides are escaped first
// (printable), so that a step name cannot reorder the table on screen.
func markdownCell(s string) string {
	s = printable(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return fence + strings.ReplaceAll(s, "|", `\|`) + fence
}

// markdownText escapes the characters that markdown could read as markup
// at the start of a paragraph or within it (CommonMark lets any ASCII
// punctuation character be escaped with a backslash), after escaping what
// printable escapes.
func markdownText(s string) string {
	var b strings.Builder
	for _, r := range printable(s) {
		if strings.ContainsRune("\\`*_{}[]()<>#+-.!|~&$", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// longestRun returns the length of the longest run of c in s.
func longestRun(s string, c byte) int {
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return longest
}
