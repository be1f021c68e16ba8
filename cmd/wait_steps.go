package cmd

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// waitPoll is how often 'ckpt wait' looks at the steps.
const waitPoll = time.Second

func (a *app) newWaitCommand() *cobra.Command {
	var (
		o    waitOptions
		from string
	)
	c := &cobra.Command{
		Use:   "wait [ID] [--from FILE|-] [--timeout D]",
		Short: "Wait until a session's steps have ended, then print them",
		Long: `Wait until every step listed in FILE (one name a line, as for 'ckpt queue';
'-' reads stdin), or every step of the session without --from, has ended:
passed, failed, interrupted or crashed (its runner gone). Then print the
steps as 'ckpt steps' does and exit 0 if all passed, 1 if any did not. A
listed step that has not started yet is waited for; without --from, a
session with no step yet is waited for. A step whose attempt failed while
it is claimed again (a retry, another runner) is still running. Without ID,
the session is $CKPT_SESSION.

This is the last job of a fleet ('ckpt queue' on several runners): it
gathers the result. With --timeout D, it gives up after D with exit status
4, printing the steps as they are.`,
		Example: `  ckpt wait "$S" --from tests.txt --timeout 30m
  ckpt wait --timeout 1h && ckpt report --junit junit.xml`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			if o.timeout < 0 {
				return usageError{fmt.Errorf("--timeout %s: want 0 (no limit) or more", o.timeout)}
			}
			if from != "" {
				var err error
				if o.names, err = a.readStepList(from); err != nil {
					return err
				}
			}
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			o.id = id
			return a.runWait(c.Context(), o)
		},
	}
	c.Flags().StringVar(&from, "from", "", "wait for the steps listed in `FILE`, one a line ('-': stdin)")
	durationVar(c.Flags(), &o.timeout, "timeout", 0, "give up after `D` with exit status 4 (0: wait as long as it takes)")
	return c
}

type waitOptions struct {
	id      string
	names   []string      // the steps to wait for; nil: all of them
	timeout time.Duration // 0: no limit
}

// runWait polls the session until the steps named (all, if o.names is nil)
// have ended, or o.timeout runs out, and prints them.
func (a *app) runWait(ctx context.Context, o waitOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	var deadline <-chan time.Time
	if o.timeout > 0 {
		t := time.NewTimer(o.timeout)
		defer t.Stop()
		deadline = t.C
	}
	for {
		st, err := s.Stat(ctx, storage.WithSteps())
		if err != nil {
			return err
		}
		steps, left := selectSteps(st.Steps, o.names)
		if len(left) == 0 {
			st.Steps = steps
			if err := a.printSteps(st); err != nil {
				return err
			}
			var bad []string
			for _, step := range steps {
				if step.State != checkpoint.StepPassed {
					bad = append(bad, step.Name+" "+step.State)
				}
			}
			if len(bad) > 0 {
				return exitStatus{code: 1, err: fmt.Errorf("%d of %d steps did not pass: %s", len(bad), len(steps), strings.Join(bad, ", "))}
			}
			return nil
		}
		select {
		case <-deadline:
			st.Steps = steps
			if err := a.printSteps(st); err != nil {
				return err
			}
			return exitStatus{code: 4, err: fmt.Errorf("timed out after %s: %d steps have not ended: %s", o.timeout, len(left), strings.Join(left, ", "))}
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(waitPoll):
		}
	}
}

// selectSteps returns the steps named (all of them if names is nil), in
// the session's order, and the names of those that have not ended.
func selectSteps(all []checkpoint.Step, names []string) ([]checkpoint.Step, []string) {
	byName := make(map[string]checkpoint.Step, len(all))
	for _, st := range all {
		byName[st.Name] = st
	}
	var out []checkpoint.Step
	var left []string
	if names == nil {
		out = all
		for _, st := range all {
			if st.State == checkpoint.StepRunning {
				left = append(left, st.Name)
			}
		}
		if len(all) == 0 {
			// A fleet that has not started yet: wait for its steps.
			left = append(left, "(no step has started yet)")
		}
		return out, left
	}
	for _, n := range names {
		st, ok := byName[n]
		switch {
		case !ok:
			left = append(left, n)
		case st.State == checkpoint.StepRunning:
			left = append(left, n)
			out = append(out, st)
		default:
			out = append(out, st)
		}
	}
	return out, left
}
