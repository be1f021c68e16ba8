package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// TestManRenders renders every man page with groff, as man does, and checks
// that it shows all of its command's help: each paragraph of the
// description, each line of a table or an example, the synopsis, every
// flag and its usage. Markdown read into plain help would drop or restyle
// text silently: '<when>' vanishes as HTML, '*' and '_' pair up as emphasis,
// indented tables are refilled into one paragraph.
func TestManRenders(t *testing.T) {
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("groff is not installed")
	}
	dir := t.TempDir()
	date := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	if err := writeMan(dir, "v1.2.3", &date); err != nil {
		t.Fatal(err)
	}
	r := root() // the help as written, before writeMan's markdown
	env, _, _ := r.Find([]string{"environment"})
	pages := 0
	var visit func(c *cobra.Command)
	visit = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() && !sub.IsAdditionalHelpTopicCommand() {
				visit(sub)
			}
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		t.Run(name, func(t *testing.T) {
			out, err := exec.Command(groff, "-k", "-man", "-Tutf8", "-P-cbou", "-rLL=200n", filepath.Join(dir, name)).CombinedOutput()
			if err != nil {
				t.Fatalf("groff: %v\n%s", err, out)
			}
			shown := normalize(string(out))
			want := []string{c.UseLine(), c.Short}
			want = append(want, chunks(c.Long)...)
			want = append(want, chunks(c.Example)...)
			c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
				if !f.Hidden {
					_, usage := pflag.UnquoteUsage(f)
					want = append(want, "--"+f.Name, usage)
				}
			})
			if c == r {
				want = append(want, "ENVIRONMENT", "EXIT STATUS", "ckpt v1.2.3", "Nov 2026")
				want = append(want, chunks(env.Long)...)
			}
			for _, w := range want {
				if w = normalize(w); !strings.Contains(shown, w) {
					t.Errorf("the page does not show %q", w)
				}
			}
			if t.Failed() {
				t.Logf("groff shows:\n%s", out)
			}
		})
		pages++
	}
	visit(r)
	files, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(files) != pages || pages < 20 {
		t.Errorf("%d pages written, %d commands", len(files), pages)
	}
}

// TestManSections checks the order of ckpt.1's sections: EXIT STATUS and
// ENVIRONMENT after the options, as man-pages(7) has them.
func TestManSections(t *testing.T) {
	dir := t.TempDir()
	if err := writeMan(dir, "", nil); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "ckpt.1"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`(?m)^\.SH (.*)$`).FindAllSubmatch(page, -1) {
		got = append(got, strings.Trim(string(m[1]), `"`))
	}
	want := []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "ENVIRONMENT", "EXAMPLE", "SEE ALSO"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("sections %q, want %q", got, want)
	}
}

// TestCompletions checks that the scripts are written and call ckpt's
// __complete command.
func TestCompletions(t *testing.T) {
	dir := t.TempDir()
	if err := writeCompletions(dir); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ckpt.bash", "ckpt.zsh", "ckpt.fish"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte("__complete")) {
			t.Errorf("%s does not call ckpt __complete:\n%s", name, b)
		}
	}
}

// chunks splits help text as markdown does: a paragraph of lines that are
// not indented is refilled, so it is one chunk; an indented line is kept
// as it is, so it is a chunk of its own.
func chunks(text string) []string {
	var out []string
	var para []string
	flush := func() {
		if len(para) > 0 {
			out = append(out, strings.Join(para, " "))
			para = nil
		}
	}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case indented(line):
			flush()
			out = append(out, line)
		default:
			para = append(para, line)
		}
	}
	flush()
	return out
}

var (
	hyphenBreak = regexp.MustCompile(`\x{2010}\n\s*`) // a hyphen groff added
	dashBreak   = regexp.MustCompile(`-\n\s*`)        // a break after a '-'
	space       = regexp.MustCompile(`\s+`)
)

// normalize undoes what filling does to text: line breaks, hyphenation,
// runs of spaces.
func normalize(s string) string {
	s = hyphenBreak.ReplaceAllString(s, "")
	s = dashBreak.ReplaceAllString(s, "-")
	return strings.TrimSpace(space.ReplaceAllString(s, " "))
}
