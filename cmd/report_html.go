package cmd

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// htmlPage renders the HTML report of session s, whose steps are steps,
// with its header and every kept attempt, as of now.
func (a *app) htmlPage(ctx context.Context, s *storage.Session, steps []reportStep) ([]byte, error) {
	h, err := s.Head(ctx)
	if err != nil {
		return nil, err
	}
	attempts, err := s.Attempts(ctx)
	if err != nil {
		return nil, err
	}
	return htmlReport(s.ID(), h, steps, attempts, a.now())
}

// htmlReport renders the HTML report of session id: h is its header (nil
// when it has none), steps its steps in the order they first ran, with the
// log tails of those that did not pass, and attempts every kept attempt,
// ordered by start. An attempt still running is drawn up to now.
func htmlReport(id string, h *checkpoint.Header, steps []reportStep, attempts []checkpoint.Attempt, now time.Time) ([]byte, error) {
	p := htmlDoc{ID: id, Total: len(steps), Generated: clock(now)}
	if h != nil {
		p.Title, p.Key = h.Title, h.Key
		if !h.Created.IsZero() {
			p.Created = clock(h.Created)
		}
	}
	if p.Key == "" {
		p.Key, p.KeyOfSteps = commonKey(steps), true
	}
	for _, c := range counts(steps) {
		if c.n > 0 {
			p.Counts = append(p.Counts, htmlCount{State: c.state, N: c.n})
		}
	}
	anchors := make(map[string]string, len(steps))
	for i, st := range steps {
		anchors[st.Name] = fmt.Sprintf("step-%d", i+1)
	}
	p.Timeline = timeline(attempts, anchors, now)

	// The lane of each step's latest attempt: who ran it last.
	ranOn := map[string]string{}
	latest := map[string]int{}
	for _, at := range attempts {
		if at.N >= latest[at.Step] {
			latest[at.Step], ranOn[at.Step] = at.N, laneName(at)
		}
	}
	shown := 0
	for _, st := range steps {
		hs := htmlStep{
			ID: anchors[st.Name], Name: st.Name, State: st.State, Exit: "-", Attempts: st.Attempts, Duration: "-",
			Runner: ranOn[st.Name], Key: shortKey(st.Key), FullKey: st.Key, Command: shellQuote(st.Command),
		}
		if st.State != checkpoint.StepRunning && st.State != checkpoint.StepCrashed {
			hs.Duration = duration(st.Duration)
			if st.Exit >= 0 {
				hs.Exit = strconv.Itoa(st.Exit)
			}
		}
		if failing(st.State) {
			if shown == maxDetails {
				p.LeftOut++
			} else {
				shown++
				hs.Failing, hs.Summary, hs.LogHeading = true, failureMessage(st.Step), logHeading(st.log)
				if st.Note != "" && st.State != checkpoint.StepCrashed {
					hs.Note = oneLine(st.Note, 300)
				}
				if st.log.attempt > 0 {
					hs.Log = st.log.text
				}
			}
		}
		p.Steps = append(p.Steps, hs)
	}
	var buf bytes.Buffer
	if err := htmlTemplate().Execute(&buf, p); err != nil {
		return nil, fmt.Errorf("render html report: %w", err)
	}
	return buf.Bytes(), nil
}

// The page as the template reads it: every field is text, which
// html/template escapes, or a number it formats.
type (
	htmlDoc struct {
		ID, Title, Key, Created, Generated string
		KeyOfSteps                         bool // Key is the one every step ran for, not the session's
		Total                              int
		Counts                             []htmlCount
		Timeline                           *htmlTimeline // nil when no attempt has a start
		Steps                              []htmlStep
		LeftOut                            int // failing steps whose log tails are left out
	}
	htmlCount struct {
		State string
		N     int
	}
	htmlTimeline struct {
		From, To, Span string
		Attempts       int
		Lanes          []htmlLane
		Ticks          []htmlTick
		States         []string // the states of the bars, for the legend
	}
	htmlLane struct {
		Name, Summary string
		Height        int // in pixels
		Bars          []htmlBar
	}
	// htmlBar is one attempt: Left and Width are percentages of the
	// timeline, Top its row in the lane in pixels.
	htmlBar struct {
		Left, Width string
		Top         int
		State       string
		Label, Tip  string
		Href        string
		Marker      bool // a crashed attempt with nothing to say where it ended
	}
	htmlTick struct {
		Left, Label string
	}
	htmlStep struct {
		ID, Name, State, Exit, Duration, Runner, Key, FullKey, Command string
		Attempts                                                       int
		Failing                                                        bool
		Summary, Note, LogHeading, Log                                 string
	}
)

// The geometry of the timeline, in percent of its width and in pixels.
const (
	minBarPct = 0.25 // the narrowest bar: a few pixels, so that a quick step shows
	markerPct = 0.6  // a crashed attempt that has no end to draw
	rowPx     = 22   // a row of bars in a lane
)

// timeline lays attempts out in lanes, one per runner, each attempt a bar
// from its start to its end (see runsOf). Attempts of one lane that
// overlap (one runner name given to processes that ran at once) go in rows
// of their own. It returns nil when no attempt has a start.
func timeline(attempts []checkpoint.Attempt, anchors map[string]string, now time.Time) *htmlTimeline {
	runs := runsOf(attempts, now)
	if len(runs) == 0 {
		return nil
	}
	t0, t1 := runs[0].Started, runs[0].end
	for _, r := range runs {
		t0, t1 = earlierOf(t0, r.Started), laterOf(t1, r.end)
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Second
	}
	pct := func(t time.Time) float64 { return float64(t.Sub(t0)) / float64(span) * 100 }

	lanes := map[string]*laneLayout{}
	states := map[string]bool{}
	for _, r := range runs {
		name := laneName(*r.Attempt)
		l := lanes[name]
		if l == nil {
			l = &laneLayout{htmlLane: htmlLane{Name: name}, first: r.Started}
			lanes[name] = l
		}
		l.add(r, pct(r.Started), pct(r.end), anchors[r.Step], attemptTip(*r.Attempt, name, r.end.Sub(r.Started), r.next))
		states[r.State] = true
	}
	all := slices.Collect(maps.Values(lanes))
	slices.SortFunc(all, func(a, b *laneLayout) int { return cmp.Or(naturalCompare(a.Name, b.Name), a.first.Compare(b.first)) })
	tl := &htmlTimeline{From: clock(t0), To: clock(t0.Add(span)), Span: duration(span), Attempts: len(runs)}
	for _, l := range all {
		tl.Lanes = append(tl.Lanes, l.finish())
	}
	for _, s := range []string{checkpoint.StepPassed, checkpoint.StepFailed, checkpoint.StepInterrupted, checkpoint.StepCrashed, checkpoint.StepRunning} {
		if states[s] {
			tl.States = append(tl.States, s)
		}
	}
	step := tickStep(span)
	for d := time.Duration(0); d <= span; d += step {
		tl.Ticks = append(tl.Ticks, htmlTick{Left: percent(float64(d) / float64(span) * 100), Label: tickLabel(d, step)})
	}
	return tl
}

// attemptRun is an attempt as the timeline draws it.
type attemptRun struct {
	*checkpoint.Attempt
	end    time.Time
	marker bool          // a crashed attempt with nothing to say when it ended
	next   time.Duration // for a crashed attempt: how long until the next one began; 0 if none did
}

// runsOf returns the attempts that have a start, each with the end its bar
// is drawn to: its start and duration; for one still running, now; for one
// that crashed, the start of the step's next attempt, which found it dead
// (else it is a marker where it started).
func runsOf(attempts []checkpoint.Attempt, now time.Time) []attemptRun {
	// Each step's kept attempts, by number: the next kept one need not be N+1.
	starts := map[string]map[int]time.Time{}
	for _, at := range attempts {
		if starts[at.Step] == nil {
			starts[at.Step] = map[int]time.Time{}
		}
		starts[at.Step][at.N] = at.Started
	}
	var runs []attemptRun
	for i := range attempts {
		at := &attempts[i]
		if at.Started.IsZero() {
			continue
		}
		r := attemptRun{Attempt: at, end: at.Started.Add(at.Duration)}
		switch {
		case at.State == checkpoint.StepRunning:
			r.end = laterOf(now, at.Started)
		case at.State == checkpoint.StepCrashed && at.Duration == 0:
			r.marker = true
			next := 0
			for n := range starts[at.Step] {
				if n > at.N && (next == 0 || n < next) {
					next = n
				}
			}
			if t, ok := starts[at.Step][next]; ok && t.After(at.Started) {
				r.end, r.marker, r.next = t, false, t.Sub(at.Started)
			}
		}
		runs = append(runs, r)
	}
	return runs
}

// laneLayout is a lane being laid out.
type laneLayout struct {
	htmlLane
	first         time.Time // when its first attempt started
	rows          []float64 // where each row's last attempt ends, in percent
	last          []int     // the index in Bars of each row's last bar
	lefts, widths []float64 // of Bars, in percent
	ended         time.Duration
	running       int
	crashed       int
}

// add lays out r, which runs from left to end (in percent), in the first
// row that is free at left. Rows are packed by what attempts took, not by
// how wide they are drawn: a runner that ran many quick steps one after
// another keeps one row, its bars drawn at least minBarPct wide where there
// is room before the next.
func (l *laneLayout) add(r attemptRun, left, end float64, href, tip string) {
	width := max(end-left, minBarPct)
	reach := max(end, left+1e-6) // an attempt that took no time still holds its place
	if r.marker {
		width, reach = markerPct, left+markerPct
	}
	row := slices.IndexFunc(l.rows, func(end float64) bool { return end <= left })
	if row < 0 {
		row = len(l.rows)
		l.rows, l.last = append(l.rows, 0), append(l.last, -1)
	}
	if prev := l.last[row]; prev >= 0 {
		l.widths[prev] = min(l.widths[prev], left-l.lefts[prev])
	}
	l.rows[row], l.last[row] = reach, len(l.Bars)
	l.lefts, l.widths = append(l.lefts, left), append(l.widths, width)

	label := r.Step
	if r.State == checkpoint.StepCrashed {
		label = "crashed: " + r.Step
		if r.marker {
			label = "✕ " + label
		}
	}
	l.Bars = append(l.Bars, htmlBar{Left: percent(left), Top: 3 + row*rowPx, State: r.State, Label: label, Tip: tip, Href: href, Marker: r.marker})
	switch r.State {
	case checkpoint.StepRunning:
		l.running++
	case checkpoint.StepCrashed:
		l.crashed++
	default:
		l.ended += r.Duration
	}
}

// finish returns the lane laid out, with its summary.
func (l *laneLayout) finish() htmlLane {
	parts := []string{plural(len(l.Bars), "attempt")}
	if l.crashed > 0 {
		parts = append(parts, fmt.Sprintf("%d crashed", l.crashed))
	}
	if l.running > 0 {
		parts = append(parts, fmt.Sprintf("%d running", l.running))
	}
	if l.ended > 0 {
		parts = append(parts, "busy "+duration(l.ended))
	}
	l.Summary = strings.Join(parts, " · ")
	for i, w := range l.widths {
		l.Bars[i].Width = percent(w)
	}
	l.Height = len(l.rows)*rowPx + 3
	return l.htmlLane
}

// laneName names the lane of the runner of at: its --runner, else the
// host and pid of the process that ran it.
func laneName(at checkpoint.Attempt) string {
	switch {
	case at.Runner != "":
		return at.Runner
	case at.Owner != nil:
		return fmt.Sprintf("%s pid %d", at.Owner.Host, at.Owner.PID)
	}
	return "unknown runner"
}

// attemptTip is the tooltip of an attempt's bar: drawn is how long the bar
// is, next how long after a crashed attempt started the next one did.
func attemptTip(at checkpoint.Attempt, lane string, drawn, next time.Duration) string {
	exit := "none"
	if at.Exit >= 0 && at.State != checkpoint.StepRunning {
		exit = strconv.Itoa(at.Exit)
	}
	var took string
	switch {
	case at.State == checkpoint.StepRunning:
		took = "running for " + duration(drawn)
	case at.State == checkpoint.StepCrashed && at.Duration == 0 && next > 0:
		took = "unknown: crashed; the next attempt started " + duration(next) + " later"
	case at.State == checkpoint.StepCrashed && at.Duration == 0:
		took = "unknown: crashed"
	default:
		took = duration(at.Duration)
	}
	lines := []string{
		"step " + at.Step,
		fmt.Sprintf("attempt %d: %s", at.N, at.State),
		"exit status: " + exit,
		"duration: " + took,
		"started: " + clock(at.Started),
		"runner: " + lane,
	}
	if at.Key != "" {
		lines = append(lines, "key: "+shortKey(at.Key))
	}
	if at.Note != "" {
		lines = append(lines, "note: "+oneLine(at.Note, 300))
	}
	return strings.Join(lines, "\n")
}

// tickStep picks the time between two ticks of an axis that spans span:
// a round interval that gives at most 9 ticks.
func tickStep(span time.Duration) time.Duration {
	steps := []time.Duration{
		time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
		time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
	}
	for _, s := range steps {
		if span/s <= 8 {
			return s
		}
	}
	days := 2 * 24 * time.Hour
	for span/days > 8 {
		days *= 2
	}
	return days
}

// tickLabel renders the time d since the start of the run at a tick, to
// the precision of step.
func tickLabel(d, step time.Duration) string {
	switch {
	case step < 10*time.Millisecond:
		return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) + "s"
	case step < 100*time.Millisecond:
		return strconv.FormatFloat(d.Seconds(), 'f', 2, 64) + "s"
	case step < time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case step < time.Minute:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case step < time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}

// naturalCompare orders strings as people do: runner-2 before runner-10.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), strings.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

// digits returns how many ASCII digits s starts with.
func digits(s string) int {
	n := 0
	for n < len(s) && '0' <= s[n] && s[n] <= '9' {
		n++
	}
	return n
}

// commonKey returns the key every step with a key ran for, if they agree.
func commonKey(steps []reportStep) string {
	var key string
	for _, st := range steps {
		switch {
		case st.Key == "":
		case key == "":
			key = st.Key
		case key != st.Key:
			return ""
		}
	}
	return key
}

// shortKey shortens a key (a commit id, a hash) for a table cell.
func shortKey(k string) string {
	if r := []rune(k); len(r) > 12 {
		return string(r[:12]) + "…"
	}
	return k
}

func clock(t time.Time) string {
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

func percent(p float64) string {
	return strconv.FormatFloat(p, 'f', 3, 64)
}

func earlierOf(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func laterOf(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// htmlTemplate is parsed on first use: parsed when the package is
// initialised, it would cost every ckpt command, not just report --html.
var htmlTemplate = sync.OnceValue(func() *template.Template {
	return template.Must(template.New("report").Parse(htmlSource))
})

// htmlSource is the page: one file, with its style inline and no script,
// so that it reads the same offline, from a CI artifact or an e-mail.
const htmlSource = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ckpt report: {{.ID}}</title>
<style>
:root {
  --passed: #1a7f37; --failed: #cf222e; --interrupted: #bf8700; --running: #0969da; --crashed: #6639ba;
  --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --faint: #eef1f4; --label: 15rem;
}
* { box-sizing: border-box; }
body { margin: 0; padding: 20px 28px 40px; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12px; }
h1 { font-size: 20px; margin: 0 0 2px; font-weight: 600; }
h2 { font-size: 16px; margin: 26px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); font-weight: 600; }
.title { font-size: 16px; margin: 0 0 6px; }
.meta { display: flex; flex-wrap: wrap; gap: 2px 22px; margin: 6px 0; color: var(--muted); }
.meta div { display: flex; gap: 6px; }
.meta dd { margin: 0; color: var(--fg); word-break: break-all; }
.counts, .legend { display: flex; flex-wrap: wrap; gap: 8px; margin: 10px 0; padding: 0; list-style: none; }
.chip { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; background: var(--muted);
  font-size: 12px; font-weight: 600; line-height: 20px; white-space: nowrap; }
.passed { background: var(--passed); }
.failed { background: var(--failed); }
.interrupted { background: var(--interrupted); }
.running { background: repeating-linear-gradient(135deg, var(--running) 0 6px, #2f81f7 6px 12px); }
.crashed { background: repeating-linear-gradient(135deg, var(--crashed) 0 4px, #1f2328 4px 8px); }
.caption, .muted { color: var(--muted); margin: 4px 0 8px; }
.timeline { position: relative; overflow: hidden; padding-right: 30px; border: 1px solid var(--line); border-radius: 6px; }
.grid { position: absolute; top: 0; bottom: 0; left: var(--label); right: 30px; pointer-events: none; }
.grid i { position: absolute; top: 0; bottom: 0; border-left: 1px solid var(--faint); }
.lane, .axis { display: flex; position: relative; }
.lane { border-bottom: 1px solid var(--faint); }
.who { flex: 0 0 var(--label); width: var(--label); padding: 3px 10px; min-height: 25px; background: #f6f8fa;
  border-right: 1px solid var(--line); overflow: hidden; white-space: nowrap; }
.who b, .who small { display: block; overflow: hidden; text-overflow: ellipsis; }
.who b { font-weight: 600; font-size: 13px; }
.who small { color: var(--muted); font-size: 11px; }
.track { position: relative; flex: 1 1 auto; min-width: 0; }
.bar { position: absolute; height: 18px; padding: 0 4px; border-radius: 3px; color: #fff; text-decoration: none;
  font-size: 11px; line-height: 18px; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  box-shadow: inset 0 0 0 1px rgba(0, 0, 0, .18); }
.bar:hover { z-index: 2; outline: 2px solid var(--fg); }
.bar.crashed { outline: 1px dashed var(--crashed); outline-offset: 1px; }
.bar.marker { padding: 0; overflow: visible; }
.bar.marker span { position: absolute; left: calc(100% + 4px); max-width: 16em; overflow: hidden; text-overflow: ellipsis;
  color: var(--crashed); font-weight: 600; }
.axis { height: 24px; }
.axis .who { background: none; border-right: 0; min-height: 0; }
.axis span { position: absolute; top: 4px; transform: translateX(-50%); color: var(--muted); font-size: 11px; white-space: nowrap; }
.axis span:first-child { transform: none; }
.legend li { display: flex; align-items: center; gap: 5px; color: var(--muted); font-size: 12px; }
.swatch { display: inline-block; width: 14px; height: 12px; border-radius: 2px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid var(--faint); vertical-align: top; }
th { position: sticky; top: 0; background: #fff; color: var(--muted); font-size: 12px; font-weight: 600; border-bottom: 1px solid var(--line); }
.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name code { word-break: break-all; }
tr:target td { background: #fff8c5; }
tr.log td { padding: 0 10px 6px 28px; }
summary { cursor: pointer; color: var(--muted); }
details p { margin: 4px 0; }
pre { margin: 4px 0 6px; padding: 8px 10px; max-height: 26em; overflow: auto; background: #f6f8fa; border-radius: 6px; }
</style>
</head>
<body>
<header>
<h1>ckpt session <code>{{.ID}}</code></h1>
{{with .Title}}<p class="title">{{.}}</p>
{{end}}<dl class="meta">
<div><dt>key</dt><dd>{{if .Key}}<code>{{.Key}}</code>{{if .KeyOfSteps}} (every step's){{end}}{{else}}none{{end}}</dd></div>
{{with .Created}}<div><dt>created</dt><dd>{{.}}</dd></div>
{{end}}{{with .Timeline}}<div><dt>ran</dt><dd>{{.From}}, for {{.Span}}</dd></div>
<div><dt>runners</dt><dd>{{len .Lanes}}</dd></div>
<div><dt>attempts</dt><dd>{{.Attempts}}</dd></div>
{{end}}<div><dt>report written</dt><dd>{{.Generated}}</dd></div>
</dl>
<ul class="counts"><li class="chip">{{.Total}} steps</li>{{range .Counts}}<li class="chip {{.State}}">{{.N}} {{.State}}</li>{{end}}</ul>
</header>
<main>
<h2>Timeline</h2>
{{with .Timeline}}<p class="caption">One lane per runner. Hover over an attempt for its details; click it for its step.</p>
<div class="timeline">
<div class="grid">{{range .Ticks}}<i style="left:{{.Left}}%"></i>{{end}}</div>
{{range .Lanes}}<div class="lane"><div class="who" title="{{.Name}}: {{.Summary}}"><b>{{.Name}}</b><small>{{.Summary}}</small></div><div class="track" style="height:{{.Height}}px">
{{range .Bars}}<a class="bar {{.State}}{{if .Marker}} marker{{end}}" href="#{{.Href}}" style="left:{{.Left}}%;width:{{.Width}}%;top:{{.Top}}px" title="{{.Tip}}">{{if .Marker}}<span>{{.Label}}</span>{{else}}{{.Label}}{{end}}</a>
{{end}}</div></div>
{{end}}<div class="axis"><div class="who"></div><div class="track">{{range .Ticks}}<span style="left:{{.Left}}%">{{.Label}}</span>{{end}}</div></div>
</div>
<ul class="legend">{{range .States}}<li><i class="swatch {{.}}"></i>{{.}}</li>{{end}}<li>time since {{.From}}</li></ul>
{{else}}<p class="caption">No attempt is recorded.</p>
{{end}}<h2>Steps</h2>
{{if .Steps}}<table>
<thead><tr><th>step</th><th>state</th><th class="num">exit</th><th class="num">attempts</th><th class="num">duration</th><th>last ran on</th><th>key</th></tr></thead>
<tbody>
{{range .Steps}}<tr id="{{.ID}}"><td class="name"><code title="{{.Command}}">{{.Name}}</code></td><td><span class="chip {{.State}}">{{.State}}</span></td><td class="num">{{.Exit}}</td><td class="num">{{.Attempts}}</td><td class="num">{{.Duration}}</td><td>{{.Runner}}</td><td>{{if .Key}}<code title="{{.FullKey}}">{{.Key}}</code>{{else}}-{{end}}</td></tr>
{{if .Failing}}<tr class="log"><td colspan="7"><details><summary>{{.Summary}}</summary>
{{with .Note}}<p>{{.}}</p>
{{end}}<p class="muted">{{.LogHeading}}</p>
{{with .Log}}<pre>{{.}}</pre>
{{end}}</details></td></tr>
{{end}}{{end}}</tbody>
</table>
{{with .LeftOut}}<p class="muted">{{.}} more steps did not pass: 'ckpt logs {{$.ID}} NAME' prints their logs.</p>
{{end}}{{else}}<p class="caption">No step is recorded.</p>
{{end}}</main>
</body>
</html>
`
