package cmd

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ckpt's version, VCS revision and checkpoint format version",
		Long: `Print the module version and the VCS revision ckpt was built from, as
recorded by the Go toolchain, and the checkpoint format version it writes.
A build from a source tree reports version "(devel)".`,
		Example: `  ckpt version
  ckpt version --json`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(c *cobra.Command, _ []string) error {
			v := versionJSON{Version: "unknown", Revision: "unknown", Format: checkpoint.Version}
			if bi, ok := debug.ReadBuildInfo(); ok {
				v.Version, v.GoVersion = bi.Main.Version, bi.GoVersion
				for _, s := range bi.Settings {
					switch s.Key {
					case "vcs.revision":
						v.Revision = s.Value
					case "vcs.time":
						v.Time = s.Value
					case "vcs.modified":
						v.Modified = s.Value == "true"
					}
				}
			}
			if a.json {
				return a.printJSON(v)
			}
			rev := v.Revision
			if v.Modified {
				rev += " (modified)"
			}
			_, err := fmt.Fprintf(c.OutOrStdout(), "ckpt %s\nrevision: %s\ngo: %s\ncheckpoint format: %d\n", v.Version, rev, v.GoVersion, v.Format)
			return err
		},
	}
}
