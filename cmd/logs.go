package cmd

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

func (a *app) newLogsCommand() *cobra.Command {
	var o logsOptions
	c := &cobra.Command{
		Use:   "logs [ID] NAME [--attempt N]",
		Short: "Print the log of a step's attempt",
		Long: `Print what an attempt of step NAME wrote to its stdout and stderr, as
'ckpt step' kept it: the latest attempt that has a log, or attempt N with
--attempt N (see the ATTEMPTS column of 'ckpt steps'; the last 5 attempts
keep their logs). A log holds at most --log-limit bytes (1 MiB by default),
the first three quarters and the last quarter with a line saying how much
was left out between them. Locally, the log of a step that is still running,
or whose run was killed, shows its output so far, up to three quarters of
the limit; on S3 a log is stored when its attempt ends. Without ID, the
session is $CKPT_SESSION.

A step that never ran with 'ckpt step', or an attempt without a log, has no
log: exit status 3.`,
		Example: `  ckpt logs "$S" unit-tests
  ckpt logs integration | tail -50
  ckpt logs reboot-test --attempt 2`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(c *cobra.Command, args []string) error {
			id, rest, err := a.sessionArgs(args, 1)
			if err != nil {
				return err
			}
			o.id, o.step = id, rest[0]
			if err := validStepName(o.step); err != nil {
				return err
			}
			if o.attempt < 0 {
				return usageError{fmt.Errorf("--attempt %d: want 1 or more", o.attempt)}
			}
			return a.runLogs(c.Context(), o)
		},
	}
	c.Flags().IntVar(&o.attempt, "attempt", 0, "print the log of attempt `N` (default: the latest with a log)")
	return c
}

type logsOptions struct {
	id, step string
	attempt  int // 0: the latest with a log
}

// runLogs prints the log of an attempt of a step.
func (a *app) runLogs(ctx context.Context, o logsOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	r, _, err := s.StepLog(ctx, o.step, o.attempt)
	if err != nil {
		return err
	}
	return errors.Join(a.printLog(r), r.Close())
}
