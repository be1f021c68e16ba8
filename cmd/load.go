package cmd

import (
	"fmt"
	"io"
	"path/filepath"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"
)

func (a *app) newLoadCommand() *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "load ID [-o FILE]",
		Short: "Write the current checkpoint's payload to stdout or a file",
		Long: `Verify the current checkpoint and write its payload to stdout, or to FILE
with -o. The whole checkpoint is checked before the first byte is written: a
checkpoint that fails its integrity check writes nothing and exits 6.

With -o, FILE is replaced atomically (a temporary file in FILE's directory,
fsynced and renamed): it appears only when complete. A session that was
created but never saved exits 3.`,
		Example: `  ckpt load "$S" > state.json
  ckpt load "$S" -o state.json || echo "nothing to resume"`,
		Args: usageArgs(cobra.ExactArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := a.session(args[0])
			if err != nil {
				return err
			}
			cp, err := s.Load(c.Context())
			if err != nil {
				return err
			}
			defer cp.Close()
			if output == "" {
				if _, err := io.Copy(c.OutOrStdout(), cp); err != nil {
					return fmt.Errorf("write payload: %w", err)
				}
				return nil
			}
			return writeFileAtomically(output, cp)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "", "write the payload to `FILE`, atomically")
	return c
}

// writeFileAtomically replaces path with the contents of r, or leaves it as
// it was.
func writeFileAtomically(path string, r io.Reader) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	pf, err := renameio.NewPendingFile(abs, renameio.WithTempDir(filepath.Dir(abs)), renameio.WithPermissions(0o600), renameio.WithExistingPermissions())
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer pf.Cleanup()
	if _, err := io.Copy(pf, r); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
