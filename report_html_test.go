package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/cmd"
	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// findChromium returns the path of headless Chromium ($CHROMIUM, else
// chromium or chromium-browser on $PATH). Without it the test is skipped,
// unless $CI is "true" or CKPT_REQUIRE_CHROMIUM=1: then it fails.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const why = "chromium is not installed (apt-get install chromium, or set $CHROMIUM)"
	if os.Getenv("CI") == "true" || os.Getenv("CKPT_REQUIRE_CHROMIUM") == "1" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// runChromium runs headless Chromium on url with args, in a profile and a
// HOME of its own under dir, with its background networking off (the page
// needs none), and returns what it prints on stdout.
func runChromium(t *testing.T, chromium, dir, url string, args ...string) []byte {
	t.Helper()
	home := filepath.Join(dir, "home")
	profile, err := os.MkdirTemp(dir, "profile-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	argv := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + profile, "--window-size=1400,900"}, args...)
	c := exec.CommandContext(ctx, chromium, append(argv, url)...)
	c.Dir = dir
	c.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"), "XDG_DATA_HOME="+filepath.Join(home, ".local", "share"))
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		t.Fatalf("chromium %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.Bytes()
}

// fleetSession records a run of steps shared by three named runners, one
// of which dies holding a step (its claim let go without an end, as a
// killed process's is), and a step run by a process with no runner name.
// It returns the session, the lanes the run should show and every step.
func fleetSession(t *testing.T, ctx context.Context, repoDir string) (s *storage.Session, lanes, steps []string) {
	t.Helper()
	r, err := repository.Open(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	s, err = r.Create(ctx, repository.CreateOptions{Prefix: "fleet", Title: "fleet run <3 runners> & a crash", Key: "4f2a9c1e77d0b3a5"})
	if err != nil {
		t.Fatal(err)
	}
	steps = []string{"build", "vet", "unit/checkpoint", "unit/storage", "unit/cmd", "TestParse/case_#01",
		`e2e/<quote "this">&that`, "e2e/flaky", "fuzz/FuzzReader", "package/linux-amd64", "package/linux-arm64", "docs"}
	const crashing, flaky = "unit/storage", "e2e/flaky"
	id := func(name string) checkpoint.Identity {
		return checkpoint.Identity{Key: "4f2a9c1e77d0b3a5", Command: []string{"go", "test", "-run", name}}
	}
	run := func(runner, name string, d time.Duration) error {
		c, err := s.StartStep(ctx, name, storage.StepOptions{Identity: id(name), Runner: runner, Command: "report test"})
		if err != nil {
			return err
		}
		time.Sleep(d)
		if runner == "runner-3" && name == crashing {
			return c.Release(ctx) // runner-3 dies here
		}
		state, exit := checkpoint.StepPassed, 0
		if name == flaky {
			w, err := c.OpenLog(ctx, 0)
			if err != nil {
				return err
			}
			if _, err := io.WriteString(w, "upload: connection reset by peer\n--- FAIL: TestUpload <flaky>\n"); err != nil {
				return err
			}
			if err := w.Close(); err != nil {
				return err
			}
			state, exit = checkpoint.StepFailed, 1
		}
		_, err = c.End(ctx, state, exit)
		return err
	}

	// runner-3 takes unit/storage first, and dies in it.
	queue := make(chan string, len(steps))
	for _, name := range steps {
		if name != crashing && name != "docs" {
			queue <- name
		}
	}
	close(queue)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for i, runner := range []string{"runner-1", "runner-2", "runner-3"} {
		wg.Go(func() {
			if runner == "runner-3" {
				errs <- run(runner, crashing, 150*time.Millisecond)
				return
			}
			for name := range queue {
				if err := run(runner, name, time.Duration(30+(len(name)*37+i*11)%90)*time.Millisecond); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// runner-1 runs the dead runner's step again, and a process with no
	// runner name runs the last step.
	if err := run("runner-1", crashing, 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := run("", "docs", 40*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return s, []string{fmt.Sprintf("%s pid %d", host, os.Getpid()), "runner-1", "runner-2", "runner-3"}, steps
}

// layoutScript is appended to a copy of the page (the page itself has no
// script): it measures what Chromium laid out, and writes it into the DOM,
// which --dump-dom prints.
const layoutScript = `<script>
const px = r => ({left: r.left, right: r.right, top: r.top, bottom: r.bottom});
const out = {lanes: [], rows: []};
for (const lane of document.querySelectorAll('.lane')) {
  const track = lane.querySelector('.track');
  const l = {name: lane.querySelector('b').textContent, box: px(lane.getBoundingClientRect()),
    track: px(track.getBoundingClientRect()), bars: []};
  for (const b of track.querySelectorAll('.bar')) {
    const s = getComputedStyle(b);
    l.bars.push({cls: b.className, href: b.getAttribute('href'), title: b.title, text: b.textContent,
      box: px(b.getBoundingClientRect()), color: s.backgroundColor, image: s.backgroundImage});
  }
  out.lanes.push(l);
}
for (const tr of document.querySelectorAll('tbody tr[id]')) {
  out.rows.push({id: tr.id, name: tr.querySelector('code').textContent, height: tr.getBoundingClientRect().height});
}
const pre = document.createElement('pre');
pre.id = 'layout';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>
`

type box struct{ Left, Right, Top, Bottom float64 }

type layout struct {
	Lanes []struct {
		Name  string
		Box   box
		Track box
		Bars  []struct {
			Cls, Href, Title, Text string
			Box                    box
			Color, Image           string
		}
	}
	Rows []struct {
		ID, Name string
		Height   float64
	}
}

// TestReportHTMLChromium writes the HTML report of a fleet run with 'ckpt
// report --html' and renders it in headless Chromium: the DOM Chromium
// builds holds a lane for each runner and every step's name; as Chromium
// lays it out, every attempt's bar lies inside its runner's lane, and bars
// of one row do not overlap, a crashed attempt looks unlike the others, and
// every step has a row; and a screenshot of it is a PNG.
func TestReportHTMLChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	chromium := findChromium(t)
	ctx := t.Context()
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "sessions")
	s, lanes, steps := fleetSession(t, ctx, repoDir)

	page := filepath.Join(dir, "report.html")
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "CKPT_REPOSITORY":
			return repoDir
		case "HOME":
			return filepath.Join(dir, "home")
		}
		return ""
	}
	if code := cmd.Main([]string{"report", s.ID(), "--html", page}, cmd.IO{In: strings.NewReader(""), Out: &stdout, Err: &stderr}, getenv); code != 0 {
		t.Fatalf("ckpt report --html: exit %d: %s", code, stderr.String())
	}
	src, err := os.ReadFile(page)
	if err != nil {
		t.Fatal(err)
	}

	// The DOM as Chromium parsed the page.
	dom := string(runChromium(t, chromium, dir, "file://"+page, "--dump-dom"))
	text := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\u00a0", "&nbsp;")
	if !strings.Contains(dom, "<h1>ckpt session <code>"+s.ID()+"</code></h1>") {
		t.Errorf("the DOM does not head the page with the session id:\n%.2000s", dom)
	}
	for _, lane := range lanes {
		if !strings.Contains(dom, `<b>`+text.Replace(lane)+`</b>`) {
			t.Errorf("the DOM has no lane named %q", lane)
		}
	}
	for _, name := range steps {
		if n := strings.Count(dom, `">`+text.Replace(name)+`</code></td>`); n != 1 {
			t.Errorf("the DOM names step %q in %d table rows, want 1", name, n)
		}
	}
	if !strings.Contains(dom, "--- FAIL: TestUpload &lt;flaky&gt;") {
		t.Errorf("the DOM does not hold the failed step's log tail")
	}
	for _, bad := range []string{"<script", "<link", "<img", "<iframe"} {
		if strings.Contains(dom, bad) {
			t.Errorf("the DOM holds %s: the page is to be inert and self-contained", bad)
		}
	}

	// The page as Chromium laid it out, measured by a script in a copy.
	measured := filepath.Join(dir, "measured.html")
	withScript := strings.Replace(string(src), "</body>", layoutScript+"</body>", 1)
	if err := os.WriteFile(measured, []byte(withScript), 0o600); err != nil {
		t.Fatal(err)
	}
	dom = string(runChromium(t, chromium, dir, "file://"+measured, "--dump-dom"))
	_, after, ok := strings.Cut(dom, `<pre id="layout">`)
	raw, _, ok2 := strings.Cut(after, "</pre>")
	if !ok || !ok2 {
		t.Fatalf("the layout script left no measurements:\n%.3000s", dom)
	}
	var got layout
	if err := json.Unmarshal([]byte(html.UnescapeString(raw)), &got); err != nil {
		t.Fatalf("measurements: %v\n%s", err, raw)
	}
	// Lanes go in their names' natural order; where the host's lane goes
	// depends on its name.
	var laneNames []string
	for _, l := range got.Lanes {
		laneNames = append(laneNames, l.Name)
	}
	if runners := slices.DeleteFunc(slices.Clone(laneNames), func(n string) bool { return n == lanes[0] }); len(laneNames) != len(lanes) ||
		!slices.Equal(runners, lanes[1:]) {
		t.Fatalf("lanes, top to bottom: %q, want %q in their natural order", laneNames, lanes)
	}
	bars, crashed := 0, 0
	colours := map[string]string{} // state: background as Chromium computed it
	for i, l := range got.Lanes {
		if w := l.Track.Right - l.Track.Left; w < 800 || l.Box.Bottom-l.Box.Top < 18 {
			t.Errorf("lane %s is laid out %.0fpx wide (its track) and %.0fpx high", l.Name, w, l.Box.Bottom-l.Box.Top)
		}
		if i > 0 && l.Box.Top < got.Lanes[i-1].Box.Bottom-0.5 {
			t.Errorf("lane %s overlaps the lane above it", l.Name)
		}
		if len(l.Bars) == 0 {
			t.Errorf("lane %s has no attempt", l.Name)
		}
		for j, b := range l.Bars {
			bars++
			if b.Box.Left < l.Track.Left-0.5 || b.Box.Right > l.Track.Right+0.5 || b.Box.Top < l.Box.Top || b.Box.Bottom > l.Box.Bottom {
				t.Errorf("lane %s: the bar of %s at %+v lies outside the lane %+v", l.Name, b.Text, b.Box, l.Track)
			}
			if b.Box.Right-b.Box.Left < 2 {
				t.Errorf("lane %s: the bar of %s is %.1fpx wide", l.Name, b.Text, b.Box.Right-b.Box.Left)
			}
			for _, prev := range l.Bars[:j] {
				if prev.Box.Top == b.Box.Top && b.Box.Left < prev.Box.Right-0.5 {
					t.Errorf("lane %s: the bars of %s and %s overlap", l.Name, prev.Text, b.Text)
				}
			}
			if !strings.HasPrefix(b.Title, "step ") || !strings.Contains(b.Title, "\nattempt ") || !strings.Contains(b.Title, "\nexit status: ") ||
				!strings.Contains(b.Title, "\nduration: ") {
				t.Errorf("lane %s: the tooltip of %s is %q", l.Name, b.Text, b.Title)
			}
			state := strings.Fields(b.Cls)[1]
			colours[state] = b.Color + " " + b.Image
			if state == checkpoint.StepCrashed {
				crashed++
				if l.Name != "runner-3" || b.Text != "crashed: unit/storage" {
					t.Errorf("a crashed attempt in lane %s, %q; want runner-3's unit/storage", l.Name, b.Text)
				}
			}
		}
	}
	if bars != len(steps)+1 {
		t.Errorf("%d bars, want %d: one per attempt", bars, len(steps)+1)
	}
	if crashed != 1 {
		t.Errorf("%d crashed attempts drawn, want 1", crashed)
	}
	for _, state := range []string{checkpoint.StepPassed, checkpoint.StepFailed, checkpoint.StepCrashed} {
		for _, other := range []string{checkpoint.StepPassed, checkpoint.StepFailed, checkpoint.StepCrashed} {
			if state < other && colours[state] == colours[other] {
				t.Errorf("%s and %s attempts look alike: %s", state, other, colours[state])
			}
		}
	}
	if !strings.Contains(colours[checkpoint.StepCrashed], "repeating-linear-gradient") {
		t.Errorf("a crashed attempt is not hatched: %s", colours[checkpoint.StepCrashed])
	}
	var rows []string
	for _, r := range got.Rows {
		rows = append(rows, r.Name)
		if r.Height < 10 {
			t.Errorf("the row of %s is %.1fpx high", r.Name, r.Height)
		}
	}
	slices.Sort(rows)
	if want := slices.Sorted(slices.Values(steps)); !slices.Equal(rows, want) {
		t.Errorf("the steps' table lists %q, want %q", rows, want)
	}

	// A screenshot, as CI keeps one.
	png := filepath.Join(dir, "report.png")
	runChromium(t, chromium, dir, "file://"+page, "--screenshot="+png, "--hide-scrollbars")
	shot, err := os.ReadFile(png)
	if err != nil {
		t.Fatal(err)
	}
	if len(shot) < 1000 || !bytes.HasPrefix(shot, []byte("\x89PNG\r\n\x1a\n")) {
		t.Errorf("the screenshot is %d bytes, starting %q: not a PNG of the page", len(shot), shot[:min(len(shot), 8)])
	}
	if dir := os.Getenv("CKPT_REPORT_HTML_KEEP"); dir != "" {
		for name, data := range map[string][]byte{"report.html": src, "report.png": shot} {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
