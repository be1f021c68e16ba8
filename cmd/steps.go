package cmd

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newStepsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "steps [ID]",
		Short: "List a session's steps and how each ended",
		Long: `List the steps 'ckpt step' recorded in a session, in the order they first
ran: name, state, exit status, attempts, start time and duration. Without ID,
the session is $CKPT_SESSION.

The state is one of:

  running      started and not finished: still running, or its run was
               killed (SIGKILL, a reboot) before it could record an end
  passed       CMD exited 0; 'ckpt step' skips it from now on
  failed       CMD exited non-zero, after its retries
  interrupted  SIGINT or SIGTERM reached the step and CMD then failed

A session with no steps lists nothing.`,
		Example: `  ckpt steps "$S"
  ckpt steps --json | jq -r '.[] | select(.state != "passed") | .name'`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			return a.runSteps(c.Context(), stepsOptions{id: id})
		},
	}
}

type stepsOptions struct {
	id string
}

// runSteps lists a session's steps.
func (a *app) runSteps(ctx context.Context, o stepsOptions) error {
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	st, err := s.Stat(ctx, storage.WithSteps())
	if err != nil {
		return err
	}
	return a.printSteps(st)
}
