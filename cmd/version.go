package cmd

import (
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// A release build stamps what it was built from into these at link time
// (.goreleaser.yaml):
//
//	-X github.com/ckpt-dev/ckpt/cmd.version=1.2.3
//	-X github.com/ckpt-dev/ckpt/cmd.commit=<full commit id>
//	-X github.com/ckpt-dev/ckpt/cmd.date=<commit time, RFC 3339>
//
// A build without them (go build, go install) reports what the Go toolchain
// recorded instead: the module version and the VCS revision and time.
var (
	version string
	commit  string
	date    string
)

// buildVersion describes the running binary: the stamped values where the
// build set them, else the build information.
func buildVersion() versionJSON {
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
	if version != "" {
		v.Version = version
	}
	if commit != "" {
		v.Revision = commit
	}
	if date != "" {
		v.Time = date
	}
	return v
}

func (a *app) newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print ckpt's version, VCS revision and checkpoint format version",
		Long: `Print the version and the VCS revision ckpt was built from, and the
checkpoint format version it writes. A release binary reports the version,
commit and commit time its build stamped; a binary built with go build or
go install reports what the Go toolchain recorded: the module version
("(devel)" or a pseudo-version for a source tree) and the revision.
'ckpt --version' prints the version and the commit on one line.`,
		Example: `  ckpt version
  ckpt version --json
  ckpt --version`,
		Args: usageArgs(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			return a.runVersion()
		},
	}
}

// runVersion prints what the running binary was built from.
func (a *app) runVersion() error {
	return a.printVersion(buildVersion())
}
