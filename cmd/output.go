package cmd

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// This file is the one place that renders output. Every command's --json
// output is built from the types below; their field names are documented in
// the README and must stay stable.

type sessionJSON struct {
	ID         string            `json:"id"`
	Generation uint64            `json:"generation"`
	Saved      time.Time         `json:"saved"`
	Created    time.Time         `json:"created"`
	Title      string            `json:"title"`
	Flags      []string          `json:"flags"`
	App        string            `json:"app"`
	Size       int64             `json:"size"`
	SavedBy    *checkpoint.Owner `json:"saved_by"`
	Lock       *lockJSON         `json:"lock"`
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
	s := sessionJSON{ID: st.ID, Size: st.Size, Flags: []string{}, Lock: newLockJSON(st.Lock)}
	if h := st.Header; h != nil {
		s.Generation, s.Saved, s.Created = h.Generation, h.Saved, h.Created
		s.Title, s.App, s.SavedBy = h.Title, h.App, h.Owner
		if h.Flags != nil {
			s.Flags = h.Flags
		}
	} else {
		s.Saved, s.Created = st.Modified, st.Modified
	}
	return s
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
	tw := tabwriter.NewWriter(a.io.Out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tGEN\tSIZE\tSAVED\tTITLE\tFLAGS\tLOCK")
	now := a.now()
	for _, e := range entries {
		if e.Err != nil {
			fmt.Fprintf(tw, "%s\t-\t-\t-\tDAMAGED\t-\t-\n", e.ID)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.ID, gen, humanSize(st.Size), age(now, st.Modified), oneLine(title, 40), flags, lock)
	}
	return tw.Flush()
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
	tw := tabwriter.NewWriter(a.io.Out, 0, 0, 2, ' ', 0)
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", gen, age(now, g.Saved), humanSize(g.Size), oneLine(g.Title, 40), flags, state)
	}
	return tw.Flush()
}

// printFindings renders what verify found, one line per problem.
func (a *app) printFindings(fs []finding) error {
	if a.json {
		if fs == nil {
			fs = []finding{}
		}
		return a.printJSON(verifyJSON{Problems: fs})
	}
	for _, f := range fs {
		path := f.Path
		if path == "" {
			path = "-"
		}
		if _, err := fmt.Fprintf(a.io.Out, "%s: %s: %s: %s\n", f.Session, f.Kind, path, f.Detail); err != nil {
			return err
		}
	}
	return nil
}

// printShow renders all of one session's metadata.
func (a *app) printShow(st *storage.Status, path string) error {
	if a.json {
		return a.printJSON(newSessionJSON(st))
	}
	now := a.now()
	tw := tabwriter.NewWriter(a.io.Out, 0, 0, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
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
	}
	if l := st.Lock; l == nil {
		row("lock", "none")
	} else {
		row("lock", fmt.Sprintf("%s: held by %s; %s", lockState(l), l.Owner, l.Reason))
	}
	return tw.Flush()
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

// warn prints a warning on stderr.
func (a *app) warn(format string, args ...any) {
	fmt.Fprintf(a.io.Err, "ckpt: warning: "+format+"\n", args...)
}

// notice prints an informational line on stderr, where it does not mix with
// the data on stdout.
func (a *app) notice(format string, args ...any) {
	fmt.Fprintf(a.io.Err, "ckpt: "+format+"\n", args...)
}
