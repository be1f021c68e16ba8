package cmd

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/mattn/go-runewidth"
	"github.com/schollz/progressbar/v3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// This file is the one place that renders output. Every command's --json
// output is built from the types below; their field names are documented in
// the README and must stay stable.
//
// JSON carries stored text (titles, flags, keys, step names, notes, owners'
// command lines) exactly. Text output passes it through printable first, so
// that a title cannot set the reader's window title or fake a line of its
// own, and aligns tables by display width, so that CJK and emoji titles do
// not push the columns after them out of line.

type sessionJSON struct {
	ID         string            `json:"id"`
	Generation uint64            `json:"generation"`
	Saved      time.Time         `json:"saved"`
	Created    time.Time         `json:"created"`
	Title      string            `json:"title"`
	Flags      []string          `json:"flags"`
	App        string            `json:"app"`
	Key        string            `json:"key"`
	Size       int64             `json:"size"`
	SavedBy    *checkpoint.Owner `json:"saved_by"`
	Lock       *lockJSON         `json:"lock"`
	Steps      []stepJSON        `json:"steps"`
}

// stepJSON is one step record. Exit is null while the step runs.
type stepJSON struct {
	Name       string    `json:"name"`
	State      string    `json:"state"`
	Exit       *int      `json:"exit"`
	Attempts   int       `json:"attempts"`
	Started    time.Time `json:"started"`
	DurationMS int64     `json:"duration_ms"`
	// Key and Command are what the last attempt ran for; Passed, the
	// identities the step passed for, newest first.
	Key     string         `json:"key"`
	Command []string       `json:"command"`
	Passed  []identityJSON `json:"passed"`
	// Owner is the process that ran the last attempt; Note says why it
	// ended as it did when its command did not (crashed, given up).
	Owner *checkpoint.Owner `json:"owner,omitempty"`
	Note  string            `json:"note,omitempty"`
}

type identityJSON struct {
	Key     string   `json:"key"`
	Command []string `json:"command"`
}

type damagedJSON struct {
	ID    string `json:"id"`
	Error string `json:"error"`
}

type lockJSON struct {
	State  string            `json:"state"` // "live" or "stale"
	Reason string            `json:"reason"`
	Since  time.Time         `json:"since"`
	Owner  *checkpoint.Owner `json:"owner"`
}

type savedJSON struct {
	ID         string    `json:"id"`
	Generation uint64    `json:"generation"`
	Saved      time.Time `json:"saved"`
	Size       int64     `json:"size"`
}

type breakLockJSON struct {
	ID     string    `json:"id"`
	Broken bool      `json:"broken"`
	Lock   *lockJSON `json:"lock"`
}

type removedJSON struct {
	Removed []string `json:"removed"`
}

type gcJSON struct {
	Removed []string   `json:"removed"`
	Swept   []string   `json:"swept"`
	Kept    []keptJSON `json:"kept"`
	Errors  []string   `json:"errors"`
}

type keptJSON struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

type generationJSON struct {
	Generation uint64    `json:"generation"`
	Current    bool      `json:"current"`
	Path       string    `json:"path"`
	Saved      time.Time `json:"saved"`
	Size       int64     `json:"size"`
	Title      string    `json:"title"`
	Flags      []string  `json:"flags"`
	Intact     bool      `json:"intact"`
	Error      string    `json:"error,omitempty"`
}

// finding is one problem verify found.
type finding struct {
	Session string `json:"session"`
	Kind    string `json:"kind"`
	Path    string `json:"path"`
	Detail  string `json:"detail"`
}

type verifyJSON struct {
	Problems []finding `json:"problems"`
}

type versionJSON struct {
	Version   string `json:"version"`
	Revision  string `json:"revision"`
	Time      string `json:"time"`
	Modified  bool   `json:"modified"`
	GoVersion string `json:"go_version"`
	Format    int    `json:"format"`
}

func newSessionJSON(st *storage.Status) sessionJSON {
	s := sessionJSON{ID: st.ID, Size: st.Size, Flags: []string{}, Lock: newLockJSON(st.Lock), Steps: []stepJSON{}}
	if h := st.Header; h != nil {
		s.Generation, s.Saved, s.Created = h.Generation, h.Saved, h.Created
		s.Title, s.App, s.SavedBy, s.Key = h.Title, h.App, h.Owner, h.Key
		if h.Flags != nil {
			s.Flags = h.Flags
		}
	} else {
		s.Saved, s.Created = st.Modified, st.Modified
	}
	s.Steps = newStepsJSON(st.Steps)
	return s
}

func newStepsJSON(steps []checkpoint.Step) []stepJSON {
	out := make([]stepJSON, 0, len(steps))
	for _, st := range steps {
		j := stepJSON{Name: st.Name, State: st.State, Attempts: st.Attempts, Started: st.Started, DurationMS: st.Duration.Milliseconds(),
			Key: st.Key, Command: st.Command, Passed: []identityJSON{}}
		if j.Command == nil {
			j.Command = []string{}
		}
		for _, id := range st.Passed {
			j.Passed = append(j.Passed, identityJSON{Key: id.Key, Command: id.Command})
		}
		if st.State != checkpoint.StepRunning && st.Exit >= 0 {
			j.Exit = &st.Exit
		}
		j.Owner, j.Note = st.Owner, st.Note
		out = append(out, j)
	}
	return out
}

func newLockJSON(l *storage.Lock) *lockJSON {
	if l == nil {
		return nil
	}
	return &lockJSON{State: lockState(l), Reason: l.Reason, Since: l.Since, Owner: l.Owner}
}

func lockState(l *storage.Lock) string {
	if l.Stale {
		return "stale"
	}
	return "live"
}

// table returns a writer that aligns tab-separated columns by display
// width, buffered so that a table of many rows costs a few writes, and the
// function that writes it out. Stored text goes into a cell through
// printable or clip, which also take out the tabs and newlines that would
// split it.
func (a *app) table() (*tableWriter, func() error) {
	bw := bufio.NewWriterSize(a.io.Out, 64<<10)
	tw := &tableWriter{w: bw, padding: 2}
	return tw, func() error { return errors.Join(tw.Flush(), bw.Flush()) }
}

// printJSON writes v as indented JSON followed by a newline.
func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.io.Out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printList renders a listing as a table, or as a JSON array of sessions and
// damaged entries.
func (a *app) printList(entries []repository.Entry) error {
	if a.json {
		out := make([]any, 0, len(entries))
		for _, e := range entries {
			if e.Err != nil {
				out = append(out, damagedJSON{ID: e.ID, Error: e.Err.Error()})
			} else {
				out = append(out, newSessionJSON(e.Status))
			}
		}
		return a.printJSON(out)
	}
	if len(entries) == 0 {
		return nil
	}
	tw, flush := a.table()
	fmt.Fprintln(tw, "ID\tGEN\tSIZE\tSAVED\tTITLE\tFLAGS\tLOCK")
	now := a.now()
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tDAMAGED\t-\t-\n", printable(e.ID))
			a.warn("%s", message(e.Err))
			continue
		}
		st := e.Status
		gen, title, flags := "-", "", "-"
		if h := st.Header; h != nil {
			gen, title = fmt.Sprint(h.Generation), h.Title
			if len(h.Flags) > 0 {
				flags = strings.Join(h.Flags, ",")
			}
		}
		lock := "-"
		if st.Lock != nil {
			lock = lockState(st.Lock)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", printable(st.ID), gen, humanSize(st.Size), age(now, st.Modified), clip(title, 40), printable(flags), lock)
	}
	return flush()
}

// printHistory renders a session's kept generations.
func (a *app) printHistory(gens []storage.Generation) error {
	out := make([]generationJSON, 0, len(gens))
	for _, g := range gens {
		j := generationJSON{Generation: g.Generation, Current: g.Current, Path: g.Path, Size: g.Size, Flags: []string{}, Intact: g.Err == nil}
		if h := g.Header; h != nil {
			j.Saved, j.Title = h.Saved, h.Title
			if h.Flags != nil {
				j.Flags = h.Flags
			}
		}
		if g.Err != nil {
			j.Error = message(g.Err)
		}
		out = append(out, j)
	}
	if a.json {
		return a.printJSON(out)
	}
	now := a.now()
	tw, flush := a.table()
	fmt.Fprintln(tw, "GEN\tSAVED\tSIZE\tTITLE\tFLAGS\tSTATE")
	for _, g := range out {
		gen := fmt.Sprint(g.Generation)
		if g.Current {
			gen += "*"
		}
		state := "intact"
		if !g.Intact {
			state = "CORRUPT"
			a.warn("%s", g.Error)
		}
		flags := "-"
		if len(g.Flags) > 0 {
			flags = strings.Join(g.Flags, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", gen, age(now, g.Saved), humanSize(g.Size), clip(g.Title, 40), printable(flags), state)
	}
	return flush()
}

// printVerify renders what verify found, one line per problem on stdout,
// and a summary on stderr.
func (a *app) printVerify(rep *repository.Report) error {
	fs := make([]finding, 0, len(rep.Findings))
	for _, f := range rep.Findings {
		fs = append(fs, finding{Session: f.Session, Kind: f.Kind, Path: f.Path, Detail: f.Detail})
	}
	if a.json {
		if err := a.printJSON(verifyJSON{Problems: fs}); err != nil {
			return err
		}
	} else {
		for _, f := range fs {
			path := f.Path
			if path == "" {
				path = "-"
			}
			if _, err := fmt.Fprintf(a.io.Out, "%s: %s: %s: %s\n", printable(f.Session), f.Kind, printable(path), printable(strings.ReplaceAll(f.Detail, "\n", "; "))); err != nil {
				return err
			}
		}
	}
	a.notice("verified %s: %s, %s", plural(rep.Verified, "session"), plural(len(fs), "problem"), plural(rep.Corrupt, "corrupt checkpoint"))
	return nil
}

// printShow renders all of one session's metadata.
func (a *app) printShow(st *storage.Status, path string) error {
	if a.json {
		return a.printJSON(newSessionJSON(st))
	}
	now := a.now()
	tw, flush := a.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, printable(v)) }
	row("id", st.ID)
	row("path", path)
	if h := st.Header; h == nil {
		row("generation", "none (the session's creation did not complete)")
	} else {
		gen := fmt.Sprint(h.Generation)
		if h.Generation == 0 {
			gen += " (no checkpoint saved yet)"
		}
		row("generation", gen)
		row("saved", stamp(now, h.Saved))
		row("created", stamp(now, h.Created))
		row("title", h.Title)
		row("flags", strings.Join(h.Flags, ","))
		row("app", h.App)
		row("size", fmt.Sprintf("%s (%d bytes)", humanSize(st.Size), st.Size))
		row("saved by", h.Owner.String())
		row("steps", stepSummary(st.Steps))
	}
	if l := st.Lock; l == nil {
		row("lock", "none")
	} else {
		row("lock", fmt.Sprintf("%s: held by %s; %s", lockState(l), l.Owner, l.Reason))
	}
	return flush()
}

// maxStepSummary bounds the steps 'show' names one by one.
const maxStepSummary = 12

// stepSummary renders steps in one line: "build passed, tests running".
// More than maxStepSummary steps are counted by state instead: "2000 steps:
// 1990 passed, 10 failed".
func stepSummary(steps []checkpoint.Step) string {
	if len(steps) == 0 {
		return "none"
	}
	if len(steps) > maxStepSummary {
		count := map[string]int{}
		var states []string
		for _, st := range steps {
			if count[st.State] == 0 {
				states = append(states, st.State)
			}
			count[st.State]++
		}
		slices.Sort(states)
		parts := make([]string, len(states))
		for i, s := range states {
			parts[i] = fmt.Sprintf("%d %s", count[s], s)
		}
		return fmt.Sprintf("%d steps: %s", len(steps), strings.Join(parts, ", "))
	}
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = st.Name + " " + st.State
	}
	return strings.Join(parts, ", ")
}

// printSteps renders a session's step records.
func (a *app) printSteps(st *storage.Status) error {
	steps := st.Steps
	if a.json {
		return a.printJSON(newStepsJSON(steps))
	}
	if len(steps) == 0 {
		return nil
	}
	now := a.now()
	tw, flush := a.table()
	fmt.Fprintln(tw, "NAME\tSTATE\tEXIT\tATTEMPTS\tSTARTED\tDURATION")
	for _, s := range steps {
		exit, dur := "-", "-"
		if s.State != checkpoint.StepRunning && s.State != checkpoint.StepCrashed {
			dur = duration(s.Duration)
			if s.Exit >= 0 {
				exit = fmt.Sprint(s.Exit)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", printable(s.Name), s.State, exit, s.Attempts, age(now, s.Started), dur)
	}
	return flush()
}

// printSkip says on stderr that a step is skipped because it passed.
func (a *app) printSkip(at checkpoint.Attempt) {
	if at.N == 0 {
		a.notice("skip %s (passed before)", at.Step)
		return
	}
	a.notice("skip %s (passed %s)", at.Step, age(a.now(), at.Started.Add(at.Duration)))
}

// printRunAgain says on stderr why a step that passed before runs again:
// it passed for another key or command line than id.
func (a *app) printRunAgain(prev *checkpoint.Step, id checkpoint.Identity) {
	if len(prev.Passed) == 0 && prev.State != checkpoint.StepPassed {
		return
	}
	last := prev.Identity
	if len(prev.Passed) > 0 {
		last = prev.Passed[0]
	}
	if last.Key != id.Key {
		a.notice("%s passed for %s; running it for %s", prev.Name, describeKey(last.Key), describeKey(id.Key))
		return
	}
	a.notice("%s passed for the command line %s; running it for %s", prev.Name, shellQuote(last.Command), shellQuote(id.Command))
}

// describeKey names a key in a message, shortened and escaped.
func describeKey(k string) string {
	if k == "" {
		return "no key"
	}
	if r := []rune(k); len(r) > 12 {
		k = string(r[:12]) + "…"
	}
	q := strconv.Quote(k)
	return "key " + q[1:len(q)-1]
}

// shellQuote renders argv as a shell would read it back, for messages.
func shellQuote(argv []string) string {
	out := make([]string, len(argv))
	for i, a := range argv {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r == '-' || r == '_' || r == '.' || r == '/' || r == '=' || r == ':' || r == ',' || r == '+' ||
				'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) < 0 {
			out[i] = a
			continue
		}
		out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(out, " ")
}

// printRetry says on stderr that a step's run failed and runs again.
func (a *app) printRetry(at checkpoint.Attempt, exit, run, runs int) {
	a.notice("step %s: run %d of %d (attempt %d) failed with exit status %d; trying again", at.Step, run, runs, at.N, exit)
}

// printStepEnd says on stderr how a step that did not pass ended: the line
// that goes with ckpt step's non-zero exit, which --quiet keeps.
func (a *app) printStepEnd(at checkpoint.Attempt) {
	if at.N > 1 {
		a.failure("step %s %s with exit status %d (attempt %d)", at.Step, at.State, at.Exit, at.N)
		return
	}
	a.failure("step %s %s with exit status %d", at.Step, at.State, at.Exit)
}

// printCrashed says on stderr that an attempt found dead was recorded.
func (a *app) printCrashed(at *checkpoint.Attempt) {
	if at.State == checkpoint.StepPassed {
		a.notice("step %s: attempt %d started %s did not come back; recorded as passed (--noreturn)", at.Step, at.N, age(a.now(), at.Started))
		return
	}
	a.notice("step %s: attempt %d, started %s by %s, crashed", at.Step, at.N, age(a.now(), at.Started), at.Owner)
}

// duration renders a step's duration to a useful precision.
func duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// warnDamaged warns about damaged sessions that were passed over.
func (a *app) warnDamaged(entries []repository.Entry) {
	for _, e := range entries {
		a.warn("skipped damaged session: %s", message(e.Err))
	}
}

// printLast renders the session 'last' found: its id, or all of it.
func (a *app) printLast(st *storage.Status) error {
	if a.json {
		return a.printJSON(newSessionJSON(st))
	}
	_, err := fmt.Fprintln(a.io.Out, printable(st.ID))
	return err
}

// printSaved renders a new generation: its number, or what save --json
// prints.
func (a *app) printSaved(id string, saved *storage.Saved) error {
	if a.json {
		return a.printJSON(savedJSON{ID: id, Generation: saved.Header.Generation, Saved: saved.Header.Saved, Size: saved.Size})
	}
	_, err := fmt.Fprintln(a.io.Out, saved.Header.Generation)
	return err
}

// printGC renders what gc did, or would do with dryRun: one line each, or
// one JSON object. Errors are reported by the caller.
func (a *app) printGC(res *repository.GCResult, dryRun bool) error {
	if a.json {
		j := gcJSON{Removed: []string{}, Swept: []string{}, Kept: []keptJSON{}, Errors: []string{}}
		j.Removed = append(j.Removed, res.Removed...)
		j.Swept = append(j.Swept, res.Swept...)
		for _, k := range res.Kept {
			j.Kept = append(j.Kept, keptJSON(k))
		}
		for _, err := range res.Errors {
			j.Errors = append(j.Errors, message(err))
		}
		return a.printJSON(j)
	}
	remove, sweep := "removed", "swept"
	if dryRun {
		remove, sweep = "would remove", "would sweep"
	}
	var b strings.Builder
	for _, id := range res.Removed {
		fmt.Fprintf(&b, "%s %s\n", remove, printable(id))
	}
	for _, p := range res.Swept {
		fmt.Fprintf(&b, "%s %s\n", sweep, printable(p))
	}
	for _, k := range res.Kept {
		fmt.Fprintf(&b, "kept %s: %s\n", printable(k.ID), printable(k.Reason))
	}
	_, err := io.WriteString(a.io.Out, b.String())
	return err
}

// printCreated renders a session create made: its id, or with --json all
// of st.
func (a *app) printCreated(id string, st *storage.Status) error {
	if a.json {
		return a.printJSON(newSessionJSON(st))
	}
	_, err := fmt.Fprintln(a.io.Out, printable(id))
	return err
}

// printCommitted renders the generation 'ckpt run' leaves, as printSaved
// does; nil, for a transaction that committed nothing on a session that
// has no generation at all, prints 0, with --json too.
func (a *app) printCommitted(id string, saved *storage.Saved) error {
	if saved == nil {
		_, err := fmt.Fprintln(a.io.Out, 0)
		return err
	}
	return a.printSaved(id, saved)
}

// printRemoved renders the sessions remove removed: nothing, or with --json
// their ids. Failures are reported by the caller.
func (a *app) printRemoved(ids []string) error {
	if !a.json {
		return nil
	}
	return a.printJSON(removedJSON{Removed: ids})
}

// printBrokenLock renders what break-lock removed of session id: l, the
// session's lock, or the claim of step when step is set; nil when there
// was none. The text goes to stderr: it is a notice, not data.
func (a *app) printBrokenLock(id, step string, l *storage.Lock) error {
	if a.json {
		return a.printJSON(breakLockJSON{ID: id, Broken: l != nil, Lock: newLockJSON(l)})
	}
	switch {
	case l == nil && step != "":
		a.notice("step %s of session %s was not claimed", step, id)
	case l == nil:
		a.notice("session %s was not locked", id)
	case step != "":
		a.notice("removed the %s claim of step %s of session %s held by %s (%s)", lockState(l), step, id, l.Owner, l.Reason)
	default:
		a.notice("removed the %s lock of session %s held by %s (%s)", lockState(l), id, l.Owner, l.Reason)
	}
	return nil
}

// printLog copies a step's log to stdout as it was kept: it is data, as a
// payload 'ckpt load' prints is, and what CMD wrote to the terminal when it
// ran, escape sequences and all.
func (a *app) printLog(r io.Reader) error {
	_, err := io.Copy(a.io.Out, r)
	return err
}

// printReport copies a finished report (JUnit XML, HTML, markdown) to
// stdout: a document its generator escaped for its own format.
func (a *app) printReport(r io.Reader) error {
	_, err := io.Copy(a.io.Out, r)
	return err
}

// printQueueEnd says on stderr what a runner of 'ckpt queue' did.
func (a *app) printQueueEnd(ran, passed, skipped int, bad []string) {
	line := fmt.Sprintf("queue: ran %d steps, %d passed", ran, passed)
	if len(bad) > 0 {
		line += fmt.Sprintf(", %d did not (%s)", len(bad), strings.Join(bad, ", "))
	}
	a.notice("%s; %d run by others or passed before", line, skipped)
}

// printVersion renders what the binary was built from.
func (a *app) printVersion(v versionJSON) error {
	if a.json {
		return a.printJSON(v)
	}
	rev := v.Revision
	if v.Modified {
		rev += " (modified)"
	}
	_, err := fmt.Fprintf(a.io.Out, "ckpt %s\nrevision: %s\ngo: %s\ncheckpoint format: %d\n", v.Version, rev, v.GoVersion, v.Format)
	return err
}

// versionLine is what 'ckpt --version' prints: the version and the commit.
// printVersionLine renders ckpt --version: the version and the commit.
func (a *app) printVersionLine() error {
	_, err := io.WriteString(a.io.Out, versionLine(buildVersion()))
	return err
}

func versionLine(v versionJSON) string {
	rev := v.Revision
	if v.Modified {
		rev += ", modified"
	}
	return fmt.Sprintf("ckpt %s (commit %s)\n", v.Version, rev)
}

func stamp(now, t time.Time) string {
	return fmt.Sprintf("%s (%s)", t.UTC().Format(time.RFC3339), age(now, t))
}

// age renders how long ago t was, in the largest whole unit.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// oneLine makes s fit one table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// warn prints a warning on stderr, one line whatever its arguments hold,
// unless --quiet.
func (a *app) warn(format string, args ...any) {
	if !a.quiet {
		a.line("ckpt: warning: ", format, args...)
	}
}

// notice prints an informational line on stderr, where it does not mix with
// the data on stdout; one line whatever its arguments hold. --quiet
// silences it.
func (a *app) notice(format string, args ...any) {
	if !a.quiet {
		a.line("ckpt: ", format, args...)
	}
}

// failure prints on stderr why ckpt exits non-zero when that is not an
// error of its own (a step's command failed): --quiet keeps it, as it keeps
// errors.
func (a *app) failure(format string, args ...any) {
	a.line("ckpt: ", format, args...)
}

// printError renders an error and what the user can do about it, one line
// each.
func (a *app) printError(msg string, hints []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "ckpt: %s\n", printable(msg))
	for _, h := range hints {
		fmt.Fprintf(&b, "ckpt: hint: %s\n", printable(h))
	}
	a.meter.above(func() { io.WriteString(a.io.Err, b.String()) })
}

// line writes one line on stderr, above the progress meter when one is
// drawn.
func (a *app) line(prefix, format string, args ...any) {
	a.meter.above(func() {
		fmt.Fprintf(a.io.Err, "%s%s\n", prefix, printable(fmt.Sprintf(format, args...)))
	})
}

// progressDelay is how long a save or load goes on before its progress is
// shown: a quick one shows nothing. Tests shorten it.
var progressDelay = time.Second

// meter shows how a long save or load goes: bytes done, of how many, and
// the rate, on one line of stderr redrawn in place
// (github.com/schollz/progressbar), cleared when it ends and while another
// line is written (app.line). It shows nothing before progressDelay, nor
// ever when stderr is not a terminal, under --quiet, or on a terminal too
// narrow for it. A nil meter counts nothing.
type meter struct {
	done  atomic.Int64
	total atomic.Int64 // -1: unknown
	what  atomic.Pointer[string]
	stop  chan struct{}
	ended chan struct{}
	once  sync.Once
	// mu guards the drawing: bar, and what reaches stderr.
	mu  sync.Mutex
	bar *progressbar.ProgressBar
}

// meterWidth is how many columns the meter's line takes at most.
const meterWidth = 80

// startMeter starts a meter of a pass called what over total bytes (-1 when
// unknown); the caller ends it with end. There is one meter at a time.
func (a *app) startMeter(what string, total int64) *meter {
	if a.quiet || !a.terminal(a.io.Err) || terminalWidth(a.io.Err) < meterWidth {
		return nil
	}
	m := &meter{stop: make(chan struct{}), ended: make(chan struct{})}
	m.pass(what, total)
	a.meter = m
	go m.show(a.io.Err)
	return m
}

// pass starts a new pass over total bytes: done starts again at 0. The
// pass that runs already goes on.
func (m *meter) pass(what string, total int64) {
	if m == nil || m.what.Load() != nil && *m.what.Load() == what {
		return
	}
	m.what.Store(&what)
	m.total.Store(total)
	m.done.Store(0)
}

// set records how many bytes of the pass are done, and of how many.
func (m *meter) set(done, total int64) {
	if m == nil {
		return
	}
	m.total.Store(total)
	m.done.Store(done)
}

// reader counts what is read through r as done; at its end, the pass
// becomes then.
func (m *meter) reader(r io.Reader, then string) io.Reader {
	if m == nil {
		return r
	}
	return &meterReader{r: r, m: m, then: then}
}

type meterReader struct {
	r    io.Reader
	m    *meter
	then string
}

func (r *meterReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.m.done.Add(int64(n))
	if err == io.EOF && r.then != "" {
		r.m.pass(r.then, -1)
	}
	return n, err
}

// show draws the meter every tenth of a second, once progressDelay passed.
// The bar is fed from the start, so that its rate counts from the start of
// its pass, but writes nothing before then.
func (m *meter) show(out io.Writer) {
	defer close(m.ended)
	start := time.Now()
	gate := &gateWriter{w: out}
	var what string
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		m.mu.Lock()
		gate.open = time.Since(start) >= progressDelay
		if w := *m.what.Load(); m.bar == nil || w != what {
			if m.bar != nil {
				m.bar.Clear()
				m.bar.Exit()
			}
			what = w
			m.bar = progressbar.NewOptions64(m.total.Load(),
				progressbar.OptionSetWriter(gate),
				progressbar.OptionSetDescription("ckpt: "+what),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionUseIECUnits(true),
				progressbar.OptionSetWidth(20),
				progressbar.OptionSetPredictTime(false),
				progressbar.OptionSetElapsedTime(false),
				// Drawn from this goroutine only, not from a spinner's.
				progressbar.OptionSetSpinnerChangeInterval(0),
				progressbar.OptionThrottle(0),
				progressbar.OptionClearOnFinish())
		}
		m.bar.ChangeMax64(m.total.Load())
		m.bar.Set64(m.done.Load())
		m.mu.Unlock()
		select {
		case <-m.stop:
			m.mu.Lock()
			m.bar.Clear()
			m.bar = nil
			m.mu.Unlock()
			return
		case <-tick.C:
		}
	}
}

// above runs write, which writes a line on stderr, with the meter's line
// cleared; the meter draws itself again at its next tick.
func (m *meter) above(write func()) {
	if m == nil {
		write()
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bar != nil {
		m.bar.Clear()
	}
	write()
}

// gateWriter passes writes on to w once open, and drops them before.
type gateWriter struct {
	w    io.Writer
	open bool
}

func (g *gateWriter) Write(p []byte) (int, error) {
	if !g.open {
		return len(p), nil
	}
	return g.w.Write(p)
}

// end stops the meter and clears its line, before anything else is
// written to stderr.
func (m *meter) end() {
	if m == nil {
		return
	}
	m.once.Do(func() { close(m.stop) })
	<-m.ended
}

// printable returns s with what a terminal would act on rather than show
// escaped as Go escapes it in a quoted string: C0 and C1 control characters
// and DEL (\x1b, \n, \u009b), the bidirectional overrides and isolates that
// reorder what follows them (\u202e), the line and paragraph separators,
// and bytes that are not UTF-8 (\xff). Everything else, wide and combining
// characters and emoji included, is kept as it is. A backslash is not
// escaped: the text stays readable, and --json has it exactly.
func printable(s string) string {
	i := unsafeIndex(s)
	if i == len(s) {
		return s
	}
	var b strings.Builder
	for i < len(s) {
		b.WriteString(s[:i])
		n := escape(&b, s[i:])
		s = s[i+n:]
		i = unsafeIndex(s)
	}
	b.WriteString(s)
	return b.String()
}

// unsafeIndex returns the index of the first byte of s that printable
// escapes, len(s) if none.
func unsafeIndex(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return i
		}
		i += n
	}
	return len(s)
}

// escape writes the escape of the rune, or the byte that is not UTF-8, at
// the start of s to b, and returns its length in s.
func escape(b *strings.Builder, s string) int {
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n == 1 {
		fmt.Fprintf(b, `\x%02x`, s[0])
		return 1
	}
	q := strconv.QuoteRune(r)
	b.WriteString(q[1 : len(q)-1])
	return n
}

// unsafeRune reports whether printable escapes r.
func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, 0x7f <= r && r < 0xa0: // C0, DEL, C1
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, // bidi marks
		0x202a <= r && r <= 0x202e, // embeddings and overrides
		0x2066 <= r && r <= 0x2069, // isolates
		r == 0x2028, r == 0x2029:   // line and paragraph separators
		return true
	}
	return false
}

// clip makes s fit a table cell n columns wide: printable, and cut with
// "…" where it is wider, never inside an escape, a wide character or an
// emoji sequence.
func clip(s string, n int) string {
	if p := printable(s); runewidth.StringWidth(p) <= n {
		return p
	}
	n -= runewidth.StringWidth("…")
	var b strings.Builder
	w := 0
	for s != "" {
		if i := unsafeIndex(s); i > 0 {
			// Text, cut where runewidth says: between grapheme clusters.
			tw := runewidth.StringWidth(s[:i])
			if w+tw > n {
				b.WriteString(runewidth.Truncate(s[:i], n-w, ""))
				break
			}
			b.WriteString(s[:i])
			w += tw
			s = s[i:]
			continue
		}
		// An escape, whole or not at all.
		var e strings.Builder
		size := escape(&e, s)
		if w+e.Len() > n {
			break
		}
		b.WriteString(e.String())
		w += e.Len()
		s = s[size:]
	}
	return b.String() + "…"
}

// tableWriter is text/tabwriter for what a terminal shows: it aligns
// tab-separated cells, given in lines ending in newlines, by display width
// (wide CJK characters and emoji take two columns) where tabwriter counts
// bytes or runes. Each cell but a line's last is padded to its column's
// width plus padding spaces. Control characters left in a cell are
// escaped (see printable). Flush writes the lines out.
type tableWriter struct {
	w       io.Writer
	padding int
	rows    [][]string
	partial []byte // the line being written, not yet ended
}

func (t *tableWriter) Write(p []byte) (int, error) {
	n := len(p)
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.partial = append(t.partial, p...)
			return n, nil
		}
		line := string(append(t.partial, p[:i]...))
		t.partial, p = t.partial[:0], p[i+1:]
		cells := strings.Split(line, "\t")
		for j, c := range cells {
			cells[j] = printable(c)
		}
		t.rows = append(t.rows, cells)
	}
}

// Flush writes out the lines written so far, aligned, and an unended last
// line as a line of its own.
func (t *tableWriter) Flush() error {
	if len(t.partial) > 0 {
		if _, err := t.Write([]byte("\n")); err != nil {
			return err
		}
	}
	var widths []int
	for _, row := range t.rows {
		for j, c := range row[:len(row)-1] {
			if j == len(widths) {
				widths = append(widths, 0)
			}
			widths[j] = max(widths[j], runewidth.StringWidth(c))
		}
	}
	var b strings.Builder
	for _, row := range t.rows {
		for j, c := range row {
			b.WriteString(c)
			if j < len(row)-1 {
				b.WriteString(strings.Repeat(" ", widths[j]-runewidth.StringWidth(c)+t.padding))
			}
		}
		b.WriteByte('\n')
	}
	t.rows = t.rows[:0]
	_, err := io.WriteString(t.w, b.String())
	return err
}
