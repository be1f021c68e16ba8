package cmd

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

// environmentLong lists every variable ckpt reads or sets. TestEnvironment
// checks it against the variables the code of this package names.
const environmentLong = `Variables ckpt reads. A flag given on the command line beats the variable
that stands in for it.

  CKPT_REPOSITORY     the repository, when --repo is not given
  CKPT_SESSION        the session of a verb whose ID is left out
  CKPT_KEY            default --key of create, last, step and queue
  CKPT_KEEP           default --keep of save and run (else 3)
  CKPT_BREAK_STALE    default --break-stale: true or false
  CKPT_RUNNER         default --runner of queue: this runner's name
  CKPT_FLEET          default --fleet of queue: the fleet run's id
  CKPT_S3_PATH_STYLE  S3 path-style addressing: true or false
  CKPT_S3_LEASE       how long an S3 lease lasts unless renewed (30s)
  CKPT_TXN            the 'ckpt run' transaction load and save join
  XDG_CACHE_HOME      default repository: $XDG_CACHE_HOME/ckpt/sessions
  HOME                without XDG_CACHE_HOME: ~/.cache/ckpt/sessions
  TMPDIR              where 'ckpt run' puts CKPT_CHECKPOINT and CKPT_NEXT
  PATH                where step, run and queue look for CMD
  CKPT_COMPLETION_DESCRIPTIONS
                      false: completions come without descriptions

An S3 repository is configured as the AWS SDK for Go is: from its shared
config files and from its variables, among them:

  AWS_ENDPOINT_URL_S3 the S3 server, when it is not AWS's
  AWS_ENDPOINT_URL    the server of every AWS service, S3 included
  AWS_REGION          the bucket's region (also AWS_DEFAULT_REGION)
  AWS_ACCESS_KEY_ID   the access key, with AWS_SECRET_ACCESS_KEY
  AWS_SECRET_ACCESS_KEY
                      the secret key of AWS_ACCESS_KEY_ID
  AWS_SESSION_TOKEN   the session token of temporary credentials
  AWS_PROFILE         the profile of the shared config files to use
  AWS_CONFIG_FILE     the shared config file, else ~/.aws/config
  AWS_SHARED_CREDENTIALS_FILE
                      the credentials file, else ~/.aws/credentials
  AWS_CA_BUNDLE       more CA certificates, for a server of your own
  AWS_EC2_METADATA_DISABLED
                      true: never ask EC2 instance metadata
  AWS_MAX_ATTEMPTS    how often a failing request is tried (default 6)

Path-style addressing (https://server/bucket/key), which most S3-compatible
servers need, is on when CKPT_S3_PATH_STYLE says so, or when it is unset and
an endpoint is configured: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or
endpoint_url in the AWS config file (in the profile or in a services
section). Warnings the AWS SDK logs are printed as "ckpt: warning: aws sdk:"
lines (--quiet drops them).

Variables ckpt sets for the command it runs, which also inherits ckpt's own
environment:

  CKPT_SESSION        run: the session id
  CKPT_REPOSITORY     run: the repository
  CKPT_CHECKPOINT     run: a file with the current payload, or empty
  CKPT_NEXT           run: where CMD writes the new payload
  CKPT_TXN            run: the transaction, for ckpt commands in CMD
  CKPT_STEP           step, queue: the name of the step CMD runs
  CKPT_ATTEMPT        step, queue: token marking the attempt's processes`

// newEnvironmentTopic is 'ckpt help environment': a help topic, not a verb
// (it has no Run), listed under "Additional help topics".
func newEnvironmentTopic() *cobra.Command {
	return &cobra.Command{
		Use:   "environment",
		Short: "Environment variables that ckpt reads and sets",
		Long:  environmentLong,
	}
}

// newHelpCommand replaces cobra's help command, which prints the root
// help, exit 0, for a topic it does not know: here an unknown topic is a
// usage error, and help topics such as environment complete as verbs do.
func (a *app) newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND|TOPIC]",
		Short: "Help about any command, or a topic such as environment",
		Long: `Print the help of a command, such as 'ckpt help step', or of a topic:
'ckpt help environment' lists the environment variables ckpt reads and sets.`,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			parent, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var comps []cobra.Completion
			for _, sub := range parent.Commands() {
				if (sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand()) && strings.HasPrefix(sub.Name(), toComplete) {
					comps = append(comps, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return comps, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error {
			target, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageError{fmt.Errorf("unknown help topic %q", strings.Join(args, " "))}
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}
