package cmd

import (
	"errors"
	"io"

	"github.com/spf13/cobra"
)

func (a *app) newLogsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logs [ID] NAME",
		Short: "Print the log of a step",
		Long: `Print what the last run of step NAME wrote to its stdout and stderr, as
'ckpt step' kept it: at most --log-limit bytes (1 MiB by default), the first
three quarters and the last quarter with a line saying how much was left out
between them. The log of a step that is still running shows its output so
far, up to three quarters of the limit. Without ID, the session is
$CKPT_SESSION.

A step that never ran with 'ckpt step' has no log: exit status 3.`,
		Example: `  ckpt logs "$S" unit-tests
  ckpt logs integration | tail -50`,
		Args: usageArgs(cobra.RangeArgs(1, 2)),
		RunE: func(c *cobra.Command, args []string) error {
			id, rest, err := a.sessionArgs(args, 1)
			if err != nil {
				return err
			}
			if err := validStepName(rest[0]); err != nil {
				return err
			}
			s, err := a.session(c.Context(), id)
			if err != nil {
				return err
			}
			r, err := s.ReadLog(c.Context(), rest[0])
			if err != nil {
				return err
			}
			_, err = io.Copy(c.OutOrStdout(), r)
			return errors.Join(err, r.Close())
		},
	}
}
