package cmd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mattn/go-runewidth"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nightly 2026-11-22", "nightly 2026-11-22"},
		{"夜間テスト 🚀 👨‍👩‍👧 café", "夜間テスト 🚀 👨‍👩‍👧 café"}, // wide, emoji, ZWJ, combining: kept
		{"a\x1b]0;pwned\a", `a\x1b]0;pwned\a`},
		{"x\nlock: none", `x\nlock: none`},
		{"tab\there\r", `tab\there\r`},
		{"\x00\x7f", `\x00\x7f`},
		{"csi \u009b2J nel \u0085", `csi \u009b2J nel \u0085`},
		{"abc\u202edef\u2066g\u2069\u200f", `abc\u202edef\u2066g\u2069\u200f`},
		{"line\u2028sep", `line\u2028sep`},
		{"bad \xff\xfe utf-8", `bad \xff\xfe utf-8`},
		{`back\slash`, `back\slash`},
		{"", ""},
	}
	for _, tt := range tests {
		got := printable(tt.in)
		if got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if printable(got) != got {
			t.Errorf("printable(%q) is not idempotent: %q", got, printable(got))
		}
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven ch…"},
		{"夜間テスト夜間テスト", 10, "夜間テス…"},
		{"夜間テスト夜間テスト", 8, "夜間テ…"}, // a wide character is not cut in two
		{"🚀🚀🚀🚀🚀🚀", 5, "🚀🚀…"},
		{"ab\x1b[31mred", 8, `ab\x1b[…`}, // 2 columns, 4 of escape, 1 of text
		{"ab\x1b[31mred", 5, `ab…`},      // the escape is not cut
		{"a\u202eb", 8, `a\u202eb`},      // fits once escaped
		{"a\u202eb", 7, `a…`},
		{"x\xffyz", 6, `x\xff…`},
		{"👨‍👩‍👧👨‍👩‍👧👨‍👩‍👧", 5, "👨‍👩‍👧👨‍👩‍👧…"}, // ZWJ sequences are kept whole
	}
	for _, tt := range tests {
		got := clip(tt.in, tt.n)
		if got != tt.want {
			t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
		if w := runewidth.StringWidth(got); w > tt.n {
			t.Errorf("clip(%q, %d) = %q, %d columns wide", tt.in, tt.n, got, w)
		}
	}
}

// columns returns the display column at which each line's cell number col
// starts, for lines of cells set apart by two or more spaces.
func columns(t *testing.T, out string, col int) []int {
	t.Helper()
	var starts []int
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		cells, w := 0, 0
		rest := line
		for cells < col {
			i := strings.Index(rest, "  ")
			if i < 0 {
				t.Fatalf("line %q has fewer than %d cells", line, col+1)
			}
			w += runewidth.StringWidth(rest[:i])
			rest = rest[i:]
			trimmed := strings.TrimLeft(rest, " ")
			w += len(rest) - len(trimmed)
			rest = trimmed
			cells++
		}
		starts = append(starts, w)
	}
	return starts
}

func TestTableWriterAlignsByDisplayWidth(t *testing.T) {
	var buf bytes.Buffer
	tw := &tableWriter{w: &buf, padding: 2}
	for _, line := range []string{
		"TITLE\tFLAGS\tLOCK\n",
		"夜間テスト 2026\tincomplete\t-\n",
		"🚀 rocket\tdone\tlive\n",
		"plain\t-\t-\n",
		"\t-\tstale\n",
	} {
		if _, err := tw.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for col := 1; col <= 2; col++ {
		starts := columns(t, out, col)
		for i, s := range starts {
			if s != starts[0] {
				t.Errorf("column %d starts at %d on line %d, at %d on line 0:\n%s", col, s, i, starts[0], out)
			}
		}
	}
	// "夜間テスト 2026" is 15 columns wide: the widest cell, plus padding.
	if got := columns(t, out, 1)[0]; got != 17 {
		t.Errorf("FLAGS starts at column %d, want 17:\n%s", got, out)
	}
	if !strings.HasSuffix(out, "-           stale\n") || strings.Contains(out, "\t") {
		t.Errorf("last column is not left unpadded, or a tab was left:\n%q", out)
	}
}

func TestTableWriterEscapesCells(t *testing.T) {
	var buf bytes.Buffer
	tw := &tableWriter{w: &buf, padding: 2}
	tw.Write([]byte("a\x1b[2J\tb\u202e\n"))
	tw.Write([]byte("unended"))
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	if want := "a\\x1b[2J  b\\u202e\nunended\n"; buf.String() != want {
		t.Errorf("table = %q, want %q", buf.String(), want)
	}
}

func testApp(out *bytes.Buffer) (*app, *bytes.Buffer) {
	var errb bytes.Buffer
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	return &app{io: IO{Out: out, Err: &errb}, getenv: func(string) string { return "" }, now: func() time.Time { return now }}, &errb
}

// A title, an owner's command line and a lock's reason reach 'ckpt show'
// escaped: no escape sequence reaches the terminal and no stored newline
// starts a line, such as a fake "lock:" line; --json keeps them exact.
func TestShowEscapesStoredText(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := &storage.Status{
		ID: "evil-abcdefghijkl",
		Header: &checkpoint.Header{
			Generation: 2, Saved: now, Created: now,
			Title: "x\x1b]0;pwned\a\nlock: none",
			Flags: []string{"incomplete"},
			App:   "app\u202eevil",
			Owner: &checkpoint.Owner{PID: 1, Host: "h\nsaved by: root", Command: "ckpt save\x1b[2J"},
		},
		Lock: &storage.Lock{Owner: &checkpoint.Owner{PID: 2, Host: "h", Command: "w\rx"}, Reason: "held\nlock: none"},
	}
	var out bytes.Buffer
	a, _ := testApp(&out)
	if err := a.printShow(st, "/repo/evil-abcdefghijkl"); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	if strings.ContainsAny(text, "\x1b\a\r\u202e") {
		t.Errorf("show printed control characters:\n%q", text)
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for _, prefix := range []string{"lock:", "saved by:"} {
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines start with %q, want 1:\n%s", n, prefix, text)
		}
	}
	for _, want := range []string{
		`title:       x\x1b]0;pwned\a\nlock: none`,
		`app:         app\u202eevil`,
		`(ckpt save\x1b[2J)`,
		`(w\rx)`,
		`held\nlock: none`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("show lacks %q:\n%s", want, text)
		}
	}

	out.Reset()
	a.json = true
	if err := a.printShow(st, ""); err != nil {
		t.Fatal(err)
	}
	if want := `"title": "x\u001b]0;pwned\u0007\nlock: none"`; !strings.Contains(out.String(), want) {
		t.Errorf("show --json lacks %s:\n%s", want, out.String())
	}
}

func TestListAndStepsEscapeStoredText(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	st := &storage.Status{
		ID: "evil-abcdefghijkl", Modified: now,
		Header: &checkpoint.Header{Generation: 1, Saved: now, Title: "a\nb\tc\x1b[0m"},
		Steps:  []checkpoint.Step{{Name: "build\u202e", State: checkpoint.StepPassed, Started: now, Attempts: 1}},
	}
	var out bytes.Buffer
	a, _ := testApp(&out)
	if err := a.printList([]repository.Entry{{ID: st.ID, Status: st}}); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); strings.Count(got, "\n") != 2 || !strings.Contains(got, `a\nb\tc\x1b[0m`) {
		t.Errorf("list = %q, want a header and one line with the title escaped", got)
	}
	out.Reset()
	if err := a.printSteps(st); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); !strings.Contains(got, "\nbuild\\u202e  passed") {
		t.Errorf("steps = %q, want the step name escaped", got)
	}
}

func TestNoticeAndErrorsAreOneLine(t *testing.T) {
	var out bytes.Buffer
	a, errb := testApp(&out)
	a.notice("broke the lock held by %s", "pid 1 (evil\n\x1b[2Jckpt: all good)")
	a.warn("%s", "bad\rline")
	a.reportError(errorList{storage.ErrNotFound, &storage.LockedError{Session: "s", Lock: storage.Lock{Owner: &checkpoint.Owner{Command: "x\ny\x1b"}}}})
	for _, l := range strings.Split(strings.TrimSuffix(errb.String(), "\n"), "\n") {
		if !strings.HasPrefix(l, "ckpt: ") || strings.ContainsAny(l, "\x1b\r") {
			t.Errorf("stderr line %q is not one clean ckpt: line; all:\n%s", l, errb.String())
		}
	}
}

func TestLooksBinary(t *testing.T) {
	tests := []struct {
		head  string
		whole bool
		want  bool
	}{
		{`{"step": 3}` + "\n", true, false},
		{"tabs\tand\r\nlines\f", true, false},
		{"夜間テスト 🚀", true, false},
		{"", true, false},
		{"nul\x00", true, true},
		{"\x1b[31mred", true, true},
		{"bell\a", true, true},
		{"del\x7f", true, true},
		{"c1 \u009b", true, true},
		{"latin-1 caf\xe9", true, true},
		{"\x89PNG\r\n\x1a\n", true, true},
		{"cut off \xe5\xa4", false, false}, // the rest of 夜 is past the head
		{"cut off \xe5\xa4", true, true},   // the payload ends there
		{"bad \xe5\xa4 middle", false, true},
	}
	for _, tt := range tests {
		if got := looksBinary([]byte(tt.head), tt.whole); got != tt.want {
			t.Errorf("looksBinary(%q, %v) = %v, want %v", tt.head, tt.whole, got, tt.want)
		}
	}
}

// show names up to maxStepSummary steps, and counts more by state.
func TestStepSummary(t *testing.T) {
	var steps []checkpoint.Step
	for i := range maxStepSummary {
		steps = append(steps, checkpoint.Step{Name: fmt.Sprintf("s%d", i), State: checkpoint.StepPassed})
	}
	if got := stepSummary(steps[:2]); got != "s0 passed, s1 passed" {
		t.Errorf("two steps: %q", got)
	}
	if got := stepSummary(steps); !strings.HasPrefix(got, "s0 passed, ") || strings.Count(got, ",") != maxStepSummary-1 {
		t.Errorf("%d steps: %q", maxStepSummary, got)
	}
	steps = append(steps, checkpoint.Step{Name: "x", State: checkpoint.StepFailed}, checkpoint.Step{Name: "y", State: checkpoint.StepCrashed})
	if got, want := stepSummary(steps), fmt.Sprintf("%d steps: 1 crashed, 1 failed, %d passed", maxStepSummary+2, maxStepSummary); got != want {
		t.Errorf("many steps: %q, want %q", got, want)
	}
	if got := stepSummary(nil); got != "none" {
		t.Errorf("no steps: %q", got)
	}
}
