// Command docgen writes ckpt's man pages and shell completion scripts, for
// 'make man' and the release archives (.goreleaser.yaml):
//
//	go run ./internal/docgen -man man -completions completions
//
// The man pages come from the commands' help through cobra/doc and
// go-md2man, one page a command (ckpt.1, ckpt-save.1, ...); ckpt.1 also
// has the ENVIRONMENT section that 'ckpt help environment' prints. The
// help is written for a terminal, not in markdown, so it is turned into
// markdown that renders as it reads (see markdown). The completion scripts
// are those 'ckpt completion bash|zsh|fish' prints. Nothing here uses the
// network. The pages are dated -date (a Unix time, such as the commit's),
// else $SOURCE_DATE_EPOCH, else today.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/ckpt-dev/ckpt/cmd"
)

func main() {
	manDir := flag.String("man", "", "write the man pages into `DIR`")
	compDir := flag.String("completions", "", "write the completion scripts into `DIR`")
	version := flag.String("version", "", "the version the man pages describe")
	date := flag.Int64("date", 0, "date the man pages `UNIXTIME`")
	flag.Parse()
	if flag.NArg() > 0 || *manDir == "" && *compDir == "" {
		fmt.Fprintln(os.Stderr, "usage: docgen [-version V] [-man DIR] [-completions DIR]")
		os.Exit(2)
	}
	if *manDir != "" {
		var when *time.Time
		if *date != 0 {
			t := time.Unix(*date, 0).UTC()
			when = &t
		}
		if err := writeMan(*manDir, *version, when); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
	}
	if *compDir != "" {
		if err := writeCompletions(*compDir); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
	}
}

// root returns ckpt's command tree as a user meets it: with cobra's
// completion command, and in an empty environment, so that no default in
// the help depends on who generated it.
func root() *cobra.Command {
	r := cmd.NewCommand(cmd.IO{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, func(string) string { return "" })
	r.InitDefaultCompletionCmd()
	r.InitDefaultHelpCmd()
	r.DisableAutoGenTag = true
	return r
}

func writeCompletions(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := root()
	for name, gen := range map[string]func(io.Writer) error{
		"ckpt.bash": func(w io.Writer) error { return r.GenBashCompletionV2(w, true) },
		"ckpt.zsh":  r.GenZshCompletion,
		"ckpt.fish": func(w io.Writer) error { return r.GenFishCompletion(w, true) },
	} {
		var b bytes.Buffer
		if err := gen(&b); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// writeMan writes the pages into dir, dated date (nil: as cobra/doc dates
// them, by $SOURCE_DATE_EPOCH or today).
func writeMan(dir, version string, date *time.Time) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// Pages of verbs that no longer exist must not linger.
	old, err := filepath.Glob(filepath.Join(dir, "ckpt*.1"))
	if err != nil {
		return err
	}
	for _, p := range old {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	r := root()
	env, _, err := r.Find([]string{"environment"})
	if err != nil || env == r {
		return fmt.Errorf("no environment help topic")
	}
	source := "ckpt"
	if version != "" {
		source += " " + version
	}
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		toMarkdown(c)
		if c == r {
			c.Long += "\n\n# ENVIRONMENT\n\n" + markdown(env.Long)
		}
		var b bytes.Buffer
		header := &doc.GenManHeader{Section: "1", Source: source, Manual: "ckpt manual", Date: date}
		if err := doc.GenMan(c, header, &b); err != nil {
			return err
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".1"
		return os.WriteFile(filepath.Join(dir, name), reorder(b.Bytes()), 0o644)
	}
	return walk(r)
}

// toMarkdown turns the help of c, written for a terminal, into the
// markdown cobra/doc expects. The examples need nothing: cobra/doc puts
// them in a code block as they are.
func toMarkdown(c *cobra.Command) {
	c.Short = escape(c.Short)
	c.Long = markdown(c.Long)
	c.LocalFlags().VisitAll(func(f *pflag.Flag) { f.Usage = escapeUsage(f.Usage) })
}

// markdown turns help text into markdown that renders as the terminal
// shows it. Runs of lines that are not indented are paragraphs, which man
// may refill; their markdown punctuation is escaped, so that an '*' or a
// '<when>' is shown rather than read as emphasis or HTML. Indented lines (a
// table, a list, a command) are kept as they are, in a code block. A line
// in capitals alone, such as "EXIT STATUS", is a section heading.
func markdown(text string) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var b strings.Builder
	for i := 0; i < len(lines); {
		line := lines[i]
		switch {
		case strings.TrimSpace(line) == "":
			b.WriteString("\n")
			i++
		case indented(line):
			j := i
			for j < len(lines) && indented(lines[j]) {
				j++
			}
			b.WriteString("\n```\n")
			for _, l := range lines[i:j] {
				b.WriteString(strings.TrimRight(l, " \t") + "\n")
			}
			b.WriteString("```\n\n")
			i = j
		case heading.MatchString(line):
			b.WriteString("\n# " + line + "\n\n")
			i++
		default:
			b.WriteString(escape(line) + "\n")
			i++
		}
	}
	return strings.TrimSpace(b.String())
}

var heading = regexp.MustCompile(`^[A-Z][A-Z ]*[A-Z]$`)

func indented(line string) bool {
	return strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")
}

// escape backslash-escapes every character that markdown could take for
// markup (blackfriday's escapable set).
func escape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune("\\`*_{}[]()#+-.!:|&<>~", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// escapeUsage escapes a flag's usage, but for its `NAME`, which stays a
// code span: it is the flag's value, shown in bold.
func escapeUsage(s string) string {
	parts := strings.Split(s, "`")
	if len(parts)%2 == 0 { // an odd number of backquotes: no code span
		return escape(s)
	}
	for i := range parts {
		if i%2 == 0 {
			parts[i] = escape(parts[i])
		}
	}
	return strings.Join(parts, "`")
}

// reorder moves the sections a command's description added (EXIT STATUS,
// ENVIRONMENT) after the options, where man-pages(7) puts them: go-md2man
// writes them where the description is.
func reorder(page []byte) []byte {
	const sh = "\n.SH "
	parts := strings.Split(string(page), sh)
	var head, extra, tail []string
	head = append(head, parts[0])
	for _, p := range parts[1:] {
		name, _, _ := strings.Cut(p, "\n")
		switch strings.Trim(name, `"`) {
		case "NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "OPTIONS INHERITED FROM PARENT COMMANDS":
			head = append(head, p)
		case "EXAMPLE", "SEE ALSO", "HISTORY":
			tail = append(tail, p)
		default:
			extra = append(extra, p)
		}
	}
	all := append(append(head, extra...), tail...)
	return []byte(strings.Join(all, sh))
}
