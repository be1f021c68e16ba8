package cmd

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Shell completion. 'ckpt completion bash|zsh|fish' (cobra's) prints a
// script that calls ckpt's hidden __complete command; what that command
// offers is set up here: session ids where a verb takes an ID, the names of
// a session's steps where it takes a NAME, the flags in use where a flag
// names one, durations, directories for --repo, and file names only where
// a verb takes a FILE.
//
// Which positional argument is which is read off each verb's Use line
// ("step [ID] NAME ... -- CMD"), so a new verb completes as its synopsis
// says without a word here.

// completionTimeout bounds the repository reads of one completion, so that
// an unreachable S3 server does not hang the shell.
const completionTimeout = 10 * time.Second

// isCompletionRequest says whether args run cobra's __complete command.
// Completions are registered only then: cobra keeps flag completion
// functions in a package-level map, and a normal run has no use for them.
func isCompletionRequest(args []string) bool {
	return len(args) > 0 && (args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd)
}

// registerCompletions sets the completion of the positional arguments and
// of the flags of every command under root, for the completion request
// args (__complete and the words of the command line).
func (a *app) registerCompletions(root *cobra.Command, args []string) {
	// Whether the word being completed comes after "--" is read off the
	// words themselves: while cobra completes, the flag set's
	// ArgsLenAtDash counts a "--" of cobra's own.
	afterDash := slices.Contains(args[1:max(1, len(args)-1)], "--")
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil && len(c.ValidArgs) == 0 {
			c.ValidArgsFunction = a.completeArgs(parseUse(c.Use), afterDash)
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if fn := a.flagCompletion(f); fn != nil {
				// An error means the flag has one already: keep it.
				_ = c.RegisterFlagCompletionFunc(f.Name, fn)
			}
		})
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// argKind is what a positional argument is, as a Use line names it.
type argKind int

const (
	argOther argKind = iota // anything else: nothing to offer, no files
	argID                   // ID: a session id
	argStep                 // NAME: a step of the session
	argFile                 // FILE: a file name
)

// argSpec is one positional argument of a Use line.
type argSpec struct {
	kind     argKind
	optional bool // [ID]
	variadic bool // ID... or [ID...]
}

// parseUse reads the positional arguments off a Use line such as
// "save [ID] [FILE|-] [--title T]": those before the first flag or "--".
func parseUse(use string) []argSpec {
	fields := strings.Fields(use)
	var specs []argSpec
	for _, f := range fields[min(1, len(fields)):] {
		if strings.HasPrefix(f, "-") || strings.HasPrefix(f, "[-") {
			break
		}
		s := argSpec{optional: strings.HasPrefix(f, "[")}
		f = strings.Trim(f, "[]")
		f, s.variadic = strings.CutSuffix(f, "...")
		f = strings.TrimSuffix(f, "]")
		switch f {
		case "ID":
			s.kind = argID
		case "NAME":
			s.kind = argStep
		case "FILE", "FILE|-":
			s.kind = argFile
		}
		specs = append(specs, s)
	}
	return specs
}

// at returns the spec of the i-th positional argument, if there is one.
func at(specs []argSpec, i int) (argSpec, bool) {
	switch {
	case i < len(specs):
		return specs[i], true
	case len(specs) > 0 && specs[len(specs)-1].variadic:
		return specs[len(specs)-1], true
	}
	return argSpec{}, false
}

// completeArgs completes the positional arguments that specs describe.
// A verb whose ID is optional takes $CKPT_SESSION when it is left out, so
// the first argument may be the ID or what follows it: both are offered.
// After "--" come a command and its arguments, which complete as files.
func (a *app) completeArgs(specs []argSpec, afterDash bool) cobra.CompletionFunc {
	return func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if afterDash {
			return nil, cobra.ShellCompDirectiveDefault
		}
		ctx, cancel := context.WithTimeout(c.Context(), completionTimeout)
		defer cancel()
		q := &completer{a: a, ctx: ctx, toComplete: toComplete}
		i := len(args)
		first, ok := at(specs, 0)
		switch {
		case !ok:
			return nil, cobra.ShellCompDirectiveNoFileComp
		case first.kind == argID && first.optional && i == 0:
			q.add(first, args, "")
			if env := a.getenv("CKPT_SESSION"); env != "" {
				if next, ok := at(specs, 1); ok {
					q.add(next, args, env)
				}
			}
		case first.kind == argID && first.optional && !first.variadic:
			// args[0] is the ID, unless it names no session and
			// $CKPT_SESSION is set: then that is the ID, and args[0] the
			// argument after it.
			id := args[0]
			if env := a.getenv("CKPT_SESSION"); env != "" && !q.exists(id) {
				id, i = env, i+1
			}
			if spec, ok := at(specs, i); ok {
				q.add(spec, args, id)
			}
		default:
			if spec, ok := at(specs, i); ok {
				q.add(spec, args, a.getenv("CKPT_SESSION"))
			}
		}
		return q.comps, q.directive()
	}
}

// completer gathers the completions of one request.
type completer struct {
	a          *app
	ctx        context.Context
	toComplete string
	comps      []cobra.Completion
	files      bool
	repo       *repository.Repository
	entries    []repository.Entry
	listed     bool
}

func (q *completer) directive() cobra.ShellCompDirective {
	if q.files {
		return cobra.ShellCompDirectiveDefault
	}
	return cobra.ShellCompDirectiveNoFileComp
}

// offer adds choice, described by desc, if it extends what was typed.
func (q *completer) offer(choice, desc string) {
	if strings.HasPrefix(choice, q.toComplete) && !slices.ContainsFunc(q.comps, func(c cobra.Completion) bool {
		return strings.SplitN(c, "\t", 2)[0] == choice
	}) {
		q.comps = append(q.comps, cobra.CompletionWithDesc(choice, describe(desc)))
	}
}

// add offers what the positional argument spec takes; id is the session
// a NAME belongs to.
func (q *completer) add(spec argSpec, args []string, id string) {
	switch spec.kind {
	case argID:
		for _, e := range q.list() {
			if spec.variadic && slices.Contains(args, e.ID) {
				continue
			}
			desc := ""
			if e.Status != nil && e.Status.Header != nil {
				desc = e.Status.Header.Title
			}
			q.offer(e.ID, desc)
		}
	case argStep:
		for _, st := range q.steps(id) {
			q.offer(st.Name, st.State)
		}
	case argFile:
		q.files = true
	}
}

func (q *completer) repository() *repository.Repository {
	if q.repo == nil {
		r, err := q.a.repository(q.ctx)
		if err != nil {
			cobra.CompDebugln("open repository: "+err.Error(), false)
			return nil
		}
		q.repo = r
	}
	return q.repo
}

// list returns the repository's sessions, damaged ones included.
func (q *completer) list() []repository.Entry {
	if !q.listed {
		q.listed = true
		if r := q.repository(); r != nil {
			entries, err := r.List(q.ctx, repository.Filter{})
			if err != nil {
				cobra.CompDebugln("list sessions: "+err.Error(), false)
			}
			q.entries = entries
		}
	}
	return q.entries
}

func (q *completer) session(id string) *storage.Session {
	if id == "" || repository.ValidateID(id) != nil {
		return nil
	}
	r := q.repository()
	if r == nil {
		return nil
	}
	s, err := r.Open(q.ctx, id)
	if err != nil {
		return nil
	}
	return s
}

// exists says whether id names a session of the repository.
func (q *completer) exists(id string) bool {
	s := q.session(id)
	if s == nil {
		return false
	}
	_, err := s.Stat(q.ctx)
	return err == nil
}

func (q *completer) steps(id string) []checkpoint.Step {
	s := q.session(id)
	if s == nil {
		return nil
	}
	steps, err := s.Steps(q.ctx)
	if err != nil {
		cobra.CompDebugln("list steps: "+err.Error(), false)
	}
	return steps
}

// sessionFlags returns the flags set on session id, or on any session
// when id is empty or names none.
func (q *completer) sessionFlags(id string) []string {
	if s := q.session(id); s != nil {
		if st, err := s.Stat(q.ctx); err == nil && st.Header != nil {
			return st.Header.Flags
		}
	}
	var flags []string
	for _, e := range q.list() {
		if e.Status != nil && e.Status.Header != nil {
			flags = append(flags, e.Status.Header.Flags...)
		}
	}
	slices.Sort(flags)
	return slices.Compact(flags)
}

// durationExamples are offered for a duration flag with nothing typed.
var durationExamples = []string{"30s", "5m", "1h", "1d", "7d"}

// flagCompletion returns how the value of f completes; nil leaves it to
// cobra (a boolean flag takes no value).
func (a *app) flagCompletion(f *pflag.Flag) cobra.CompletionFunc {
	if f.Value.Type() == "bool" {
		return nil
	}
	varname, _ := pflag.UnquoteUsage(f)
	switch {
	case f.Name == "repo":
		return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
	case f.Value.Type() == "duration" || varname == "DURATION":
		return completeDuration
	case varname == "FILE":
		return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveDefault
		}
	}
	var values func(q *completer, id string)
	switch f.Name {
	case "set", "flag", "no-flag":
		values = func(q *completer, _ string) {
			for _, fl := range q.sessionFlags("") {
				q.offer(fl, "")
			}
		}
	case "clear", "unflag":
		// The flags of the session named, if the line names one.
		values = func(q *completer, id string) {
			for _, fl := range q.sessionFlags(id) {
				q.offer(fl, "")
			}
		}
	case "prefix":
		values = func(q *completer, _ string) {
			for _, e := range q.list() {
				if p, ok := idPrefix(e.ID); ok {
					q.offer(p, "")
				}
			}
		}
	case "key":
		values = func(q *completer, _ string) {
			for _, e := range q.list() {
				if e.Status != nil && e.Status.Header != nil && e.Status.Header.Key != "" {
					q.offer(e.Status.Header.Key, e.ID)
				}
			}
		}
	}
	return func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if values == nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(c.Context(), completionTimeout)
		defer cancel()
		q := &completer{a: a, ctx: ctx, toComplete: toComplete}
		id := a.getenv("CKPT_SESSION")
		if len(args) > 0 && repository.ValidateID(args[0]) == nil {
			id = args[0]
		}
		values(q, id)
		return q.comps, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeDuration offers durations: a few examples, or the units after a
// number typed so far ("10" offers 10s, 10m, 10h and 10d).
func completeDuration(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var comps []cobra.Completion
	if toComplete != "" && strings.Trim(toComplete, "0123456789") == "" {
		for _, unit := range []string{"s", "m", "h", "d"} {
			comps = append(comps, toComplete+unit)
		}
		return comps, cobra.ShellCompDirectiveNoFileComp
	}
	for _, d := range durationExamples {
		if strings.HasPrefix(d, toComplete) {
			comps = append(comps, d)
		}
	}
	return comps, cobra.ShellCompDirectiveNoFileComp
}

// idPrefix returns the slugged prefix of an id that Create made:
// everything before the last '-' and its random suffix.
func idPrefix(id string) (string, bool) {
	i := strings.LastIndexByte(id, '-')
	if i <= 0 {
		return "", false
	}
	return id[:i], true
}

// describe makes text fit a completion's description: one line, no
// control characters (a title can hold any), at most 60 characters.
func describe(text string) string {
	text = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text)
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > 60 {
		text = string(r[:59]) + "…"
	}
	return text
}
