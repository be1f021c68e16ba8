package cmd

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// slowReader gives n chunks of size bytes, sleeping d before each: a save
// that lasts.
type slowReader struct {
	n, size int
	d       time.Duration
	left    int // of the current chunk
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		if r.n == 0 {
			return 0, io.EOF
		}
		time.Sleep(r.d)
		r.n--
		r.left = r.size
	}
	n := min(len(p), r.left)
	r.left -= n
	return copy(p, bytes.Repeat([]byte("x"), n)), nil
}

// term runs ckpt with stdin in, and says that stdout and stderr are
// terminals as outTTY and errTTY say.
type term struct {
	repo           string
	outTTY, errTTY bool
}

func (tm term) run(in io.Reader, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := map[string]string{"CKPT_REPOSITORY": tm.repo, "HOME": tm.repo, "XDG_CACHE_HOME": tm.repo}
	stdio := IO{In: in, Out: &out, Err: &errb, Terminal: func(w any) bool {
		return w == io.Writer(&out) && tm.outTTY || w == io.Writer(&errb) && tm.errTTY
	}}
	code = Main(args, stdio, func(k string) string { return env[k] })
	return code, out.String(), errb.String()
}

// Progress: a save or load that lasts shows bytes and rate on stderr when
// it is a terminal, redrawn in place and cleared at the end; nothing when
// stderr is not a terminal, under --quiet, or when the payload itself goes
// to the terminal. stdout is the same in every case.
func TestProgress(t *testing.T) {
	defer func(d time.Duration) { progressDelay = d }(progressDelay)
	progressDelay = 0
	repo := t.TempDir()
	tty, pipe := term{repo: repo, errTTY: true}, term{repo: repo}
	code, out, _ := tty.run(nil, "create", "--prefix", "progress")
	if code != 0 {
		t.Fatalf("create: %d", code)
	}
	id := strings.TrimSpace(out)
	payload := filepath.Join(t.TempDir(), "state")
	save := func(tm term, args ...string) (string, string) {
		t.Helper()
		code, out, errs := tm.run(&slowReader{n: 6, size: 64 << 10, d: 60 * time.Millisecond}, append([]string{"save", id, "-"}, args...)...)
		if code != 0 {
			t.Fatalf("save %v exited %d: %s", args, code, errs)
		}
		return out, errs
	}

	out, errs := save(tty)
	if out != "1\n" {
		t.Errorf("save on a terminal printed %q, want the generation", out)
	}
	if !strings.Contains(errs, "ckpt: save") || !strings.Contains(errs, "KiB") || !strings.Contains(errs, "KiB/s") || !strings.Contains(errs, "\r") {
		t.Errorf("save with stderr a terminal showed no progress (bytes and rate): %q", errs)
	}
	if last := errs[strings.LastIndex(errs, "\r")+1:]; strings.TrimSpace(last) != "" {
		t.Errorf("the progress line is left on the screen: %q", last)
	}
	if out, errs := save(pipe); out != "2\n" || errs != "" {
		t.Errorf("save with stderr not a terminal: stdout %q, stderr %q; want the generation, and nothing", out, errs)
	}
	if out, errs := save(tty, "--quiet"); out != "3\n" || errs != "" {
		t.Errorf("save --quiet: stdout %q, stderr %q; want the generation, and nothing", out, errs)
	}

	if code, _, errs := tty.run(nil, "load", id, "-o", payload); code != 0 || !strings.Contains(errs, "ckpt: load") {
		t.Errorf("load -o FILE with stderr a terminal exited %d and showed %q, want progress", code, errs)
	}
	if got, err := os.ReadFile(payload); err != nil || len(got) != 6*64<<10 {
		t.Errorf("load -o FILE wrote %d bytes (%v), want %d", len(got), err, 6*64<<10)
	}
	if code, _, errs := pipe.run(nil, "load", id, "-o", payload); code != 0 || errs != "" {
		t.Errorf("load -o FILE with stderr not a terminal exited %d and wrote %q to stderr, want nothing", code, errs)
	}
	if code, _, errs := tty.run(nil, "load", id, "-o", os.DevNull); code != 0 || errs != "" {
		t.Errorf("load -o %s (a device, maybe the terminal) exited %d and drew %q, want no meter", os.DevNull, code, errs)
	}
	both := term{repo: repo, outTTY: true, errTTY: true}
	if code, out, errs := both.run(nil, "load", id); code != 0 || len(out) != 6*64<<10 || errs != "" {
		t.Errorf("load onto the terminal exited %d, wrote %d bytes and %q to stderr; want the payload and no progress over it", code, len(out), errs)
	}
}

// No meter while the payload is typed at the terminal: it would draw over
// what is typed.
func TestProgressNotOverTypedInput(t *testing.T) {
	defer func(d time.Duration) { progressDelay = d }(progressDelay)
	progressDelay = 0
	repo := t.TempDir()
	code, out, _ := term{repo: repo}.run(nil, "create")
	if code != 0 {
		t.Fatalf("create: %d", code)
	}
	in := &slowReader{n: 3, size: 10, d: 50 * time.Millisecond}
	var stdout, stderr bytes.Buffer
	env := map[string]string{"CKPT_REPOSITORY": repo, "HOME": repo, "XDG_CACHE_HOME": repo}
	stdio := IO{In: in, Out: &stdout, Err: &stderr, Terminal: func(s any) bool { return s == any(in) || s == any(&stderr) }}
	if code := Main([]string{"save", strings.TrimSpace(out), "-"}, stdio, func(k string) string { return env[k] }); code != 0 || stderr.Len() != 0 {
		t.Errorf("save from a terminal's stdin exited %d and drew %q on stderr, want no meter", code, stderr.String())
	}
}

// A line written while the meter is drawn (a notice, a warning, an error)
// starts on a line of its own: the meter's line is cleared first, and the
// meter draws itself again after it.
func TestLinesAboveMeter(t *testing.T) {
	defer func(d time.Duration) { progressDelay = d }(progressDelay)
	progressDelay = 0
	var errb syncBuffer
	a := &app{io: IO{Err: &errb, Terminal: func(any) bool { return true }}, getenv: func(string) string { return "" }, now: time.Now}
	m := a.startMeter("save", 1<<20)
	m.set(300<<10, 1<<20)
	for !strings.Contains(errb.String(), "300 KiB") {
		time.Sleep(10 * time.Millisecond)
	}
	a.notice("broke the stale lock")
	a.printError("no space left on device", []string{"free some"})
	m.set(600<<10, 1<<20)
	for !strings.Contains(errb.String(), "600 KiB") {
		time.Sleep(10 * time.Millisecond)
	}
	m.end()
	got := errb.String()
	for _, line := range []string{"ckpt: broke the stale lock\n", "ckpt: no space left on device\nckpt: hint: free some\n"} {
		i := strings.Index(got, line)
		if i < 0 {
			t.Fatalf("stderr lacks %q:\n%q", line, got)
		}
		if before := got[:i]; !strings.HasSuffix(before, "\r") || strings.TrimSpace(before[strings.LastIndex(before[:len(before)-1], "\r")+1:]) != "" {
			t.Errorf("%q is not written on a cleared line:\n%q", line, got)
		}
	}
	// The last thing drawn is a line of spaces, and the cursor is back at
	// its start.
	segs := strings.Split(strings.TrimSuffix(got, "\r"), "\r")
	if last := segs[len(segs)-1]; strings.TrimSpace(last) != "" || !strings.HasSuffix(got, "\r") {
		t.Errorf("the meter's line is left after it ended: %q", got[max(0, len(got)-200):])
	}
}

// syncBuffer is a bytes.Buffer that the meter's goroutine and the test can
// share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// --quiet silences notices and warnings, never an error or its hint.
func TestQuiet(t *testing.T) {
	repo := t.TempDir()
	pipe := term{repo: repo}
	code, out, _ := pipe.run(nil, "create")
	if code != 0 {
		t.Fatalf("create: %d", code)
	}
	id := strings.TrimSpace(out)
	if code, _, errs := pipe.run(nil, "step", id, "build", "--", "true"); code != 0 {
		t.Fatalf("step: %d %s", code, errs)
	}
	if _, _, errs := pipe.run(nil, "step", id, "build", "--", "true"); !strings.HasPrefix(errs, "ckpt: skip build") {
		t.Errorf("a passed step's skip line: %q", errs)
	}
	for _, q := range []string{"--quiet", "-q"} {
		if code, _, errs := pipe.run(nil, "step", id, "build", q, "--", "true"); code != 0 || errs != "" {
			t.Errorf("step %s of a passed step exited %d and printed %q, want 0 and nothing", q, code, errs)
		}
		if code, _, errs := pipe.run(nil, "verify", q); code != 0 || errs != "" {
			t.Errorf("verify %s exited %d and printed %q, want 0 and no summary", q, code, errs)
		}
		// A failed step's line goes with its non-zero exit: kept.
		if code, _, errs := pipe.run(nil, "step", id, "flaky"+q, q, "--", "sh", "-c", "exit 3"); code != 3 || errs != "ckpt: step flaky"+q+" failed with exit status 3\n" {
			t.Errorf("step %s of a failing CMD exited %d and printed %q, want 3 and the failure", q, code, errs)
		}
		code, _, errs := pipe.run(nil, "load", "no-such-session", q)
		if code != exitNotFound || !strings.HasPrefix(errs, "ckpt: ") || !strings.Contains(errs, "no-such-session") {
			t.Errorf("load %s of a missing session exited %d and printed %q, want exit 3 and the error", q, code, errs)
		}
	}
}
