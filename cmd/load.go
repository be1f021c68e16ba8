package cmd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/google/renameio/v2"
	"github.com/spf13/cobra"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func (a *app) newLoadCommand() *cobra.Command {
	var o loadOptions
	c := &cobra.Command{
		Use:   "load [ID] [-o FILE|-] [--generation N] [--strict]",
		Short: "Write the current checkpoint's payload to stdout or a file",
		Long: `Verify the current checkpoint and write its payload to stdout, or to FILE
with -o. The whole checkpoint is checked before the first byte is written.

When the current checkpoint fails its integrity check, load falls back to the
newest intact older generation that saves kept (see 'ckpt history'), says so
on stderr ("ckpt: warning: ...") and exits 0; with --strict it exits 6
instead. When no generation is intact it writes nothing and exits 6. Damaged
files are left in place for inspection.

With -o, a regular FILE is replaced atomically (a temporary file in FILE's
directory, fsynced and renamed): it appears only when complete. As with cp
and shell redirection, a symbolic link is followed (its target is replaced)
and a device or FIFO (-o /dev/null, -o /dev/stdout) is written into, never
replaced. A session that was created but never saved exits 3.

A binary payload (not UTF-8 text, or holding NUL or other control bytes in
its first 8 KiB) is not written to a terminal: load exits 2 and writes
nothing, as a stray escape sequence could do to the terminal what it likes.
Redirect stdout, give -o FILE, or give -o - to write it to stdout anyway.

Inside 'ckpt run' on the same session, load reads the transaction's payload:
what the transaction saved so far, else the checkpoint it started from.

A load that lasts more than a second shows its progress on stderr when stderr
is a terminal and the payload does not go to it: the pass (verify, then
write), bytes and rate. --quiet hides it, and the fallback warnings too
(--strict makes a fallback fail instead).`,
		Example: `  ckpt load "$S" > state.json
  ckpt load "$S" -o state.json || echo "nothing to resume"
  ckpt load "$S" --generation 4 -o state-4.json
  ckpt load "$S" --strict > state.json   # exit 6 rather than fall back
  ckpt load "$S" -o - | xxd | less       # '-o -': stdout, even a terminal`,
		Args: usageArgs(cobra.MaximumNArgs(1)),
		RunE: func(c *cobra.Command, args []string) error {
			id, _, err := a.sessionArgs(args, 0)
			if err != nil {
				return err
			}
			o.id = id
			o.generationSet = c.Flags().Changed("generation")
			return a.runLoad(c.Context(), o)
		},
	}
	c.Flags().StringVarP(&o.output, "output", "o", "", "write the payload to `FILE`, atomically; '-' for stdout, even a terminal")
	c.Flags().Uint64Var(&o.generation, "generation", 0, "load kept generation `N` instead of the current one")
	c.Flags().BoolVar(&o.strict, "strict", false, "fail (exit 6) rather than fall back to an older generation")
	return c
}

type loadOptions struct {
	id string
	// output is -o: "" for stdout unless a binary payload would go to a
	// terminal, "-" for stdout whatever it is, else a file.
	output        string
	generation    uint64
	generationSet bool
	strict        bool
}

// runLoad writes a session's payload where o says, showing the progress of
// a long load on a terminal's stderr.
func (a *app) runLoad(ctx context.Context, o loadOptions) error {
	output := o.output
	// -o FILE: a regular file is replaced atomically, a device or FIFO
	// written into.
	var (
		target  string
		special bool
		err     error
	)
	if output != "" && output != "-" {
		if target, special, err = outputTarget(output); err != nil {
			return err
		}
	}
	if t, err := a.txnFor(o.id); err != nil || t != nil {
		if err != nil {
			return err
		}
		if o.generationSet || o.strict {
			return usageError{errors.New("inside 'ckpt run', load reads the transaction's own payload; --generation and --strict do not apply")}
		}
		f, err := t.open(o.id)
		if err != nil {
			return err
		}
		defer f.Close()
		size := int64(-1)
		if fi, err := f.Stat(); err == nil {
			size = fi.Size()
		}
		m := a.loadMeter(output, special, "load", size)
		defer m.end()
		if target != "" {
			return writeTo(target, special, m.reader(f, ""))
		}
		return a.writePayload(output, m.reader(f, ""))
	}
	s, err := a.session(ctx, o.id)
	if err != nil {
		return err
	}
	var opts []storage.LoadOption
	if o.generationSet {
		opts = append(opts, storage.AtGeneration(o.generation))
	}
	if o.strict {
		opts = append(opts, storage.Strict())
	}
	// Load downloads (S3) and verifies the whole payload before it hands
	// out a byte, then it is written: a pass each.
	m := a.loadMeter(output, special, "load: "+storage.PassVerify, -1)
	defer m.end()
	opts = append(opts, storage.ReportProgress(func(p storage.Progress) {
		m.pass("load: "+p.Pass, p.Total)
		m.set(p.Done, p.Total)
	}))
	load := func(opts ...storage.LoadOption) (*storage.Checkpoint, error) {
		cp, err := s.Load(ctx, opts...)
		if err != nil {
			return nil, err
		}
		if len(cp.Skipped) > 0 {
			// The warnings stay on the screen; the meter would draw over
			// them.
			m.end()
			for _, skipped := range cp.Skipped {
				a.warn("%s", message(skipped))
			}
			a.warn("loaded generation %d, the newest intact one, instead", cp.Header.Generation)
		}
		m.pass("load: write", cp.Size)
		if cp.Spooled {
			m.set(cp.Size, cp.Size)
		}
		cp.ReadCloser = struct {
			io.Reader
			io.Closer
		}{m.reader(cp.ReadCloser, ""), cp.ReadCloser}
		return cp, nil
	}
	if target != "" {
		if !special {
			return loadToFile(target, func(spool *os.File) (*storage.Checkpoint, error) {
				return load(append(opts, storage.SpoolTo(spool))...)
			})
		}
		cp, err := load(opts...)
		if err != nil {
			return err
		}
		defer cp.Close()
		return writeInto(target, cp)
	}
	cp, err := load(opts...)
	if err != nil {
		return err
	}
	defer cp.Close()
	return a.writePayload(output, cp)
}

// loadMeter starts the meter of a load to output, unless the payload goes
// to a terminal, where the meter would draw over it, or (special) into a
// device or a FIFO (-o /dev/tty, -o /dev/stderr), which may be one.
func (a *app) loadMeter(output string, special bool, what string, size int64) *meter {
	if special || (output == "" || output == "-") && a.terminal(a.io.Out) {
		return nil
	}
	return a.startMeter(what, size)
}

// errBinaryTerminal is load's refusal to write a binary payload onto a
// terminal that -o - did not ask for.
var errBinaryTerminal = errors.New("refusing to write a binary payload to a terminal")

// sniffLen is how much of a payload decides whether it is text.
const sniffLen = 8 << 10

// writePayload copies a payload to stdout (output "" or "-"). Unless output
// is "-", a binary payload is not written to a terminal.
func (a *app) writePayload(output string, r io.Reader) error {
	out := a.io.Out
	if output == "" && a.terminal(out) {
		br := bufio.NewReaderSize(r, sniffLen)
		head, err := br.Peek(sniffLen)
		if err != nil && err != io.EOF {
			return fmt.Errorf("read payload: %w", err)
		}
		if looksBinary(head, err == io.EOF) {
			return usageError{errBinaryTerminal}
		}
		r = br
	}
	if _, err := io.Copy(out, r); err != nil {
		return fmt.Errorf("write payload: %w", err)
	}
	return nil
}

// writeOutput writes r to the file path as cp and shell redirection do
// (see outputTarget): a regular file is replaced atomically, a device or a
// FIFO written into.
func writeOutput(path string, r io.Reader) error {
	target, special, err := outputTarget(path)
	if err != nil {
		return err
	}
	return writeTo(target, special, r)
}

// writeTo writes r to target as outputTarget resolved it: into a special
// file, or atomically replacing a regular one.
func writeTo(target string, special bool, r io.Reader) error {
	if special {
		return writeInto(target, r)
	}
	return writeFileAtomically(target, r)
}

// outputTarget resolves where 'load -o PATH' writes, as cp and shell
// redirection do: a symbolic link is followed, to its target; a regular
// file, or none, is replaced atomically there (special is false); a device,
// a FIFO or a socket is written into, never replaced (special is true).
func outputTarget(path string) (target string, special bool, err error) {
	target, err = filepath.EvalSymlinks(path)
	if errors.Is(err, fs.ErrNotExist) {
		// A file to create, or a dangling link, whose target cp creates.
		target = path
		if l, lerr := os.Readlink(path); lerr == nil {
			if !filepath.IsAbs(l) {
				l = filepath.Join(filepath.Dir(path), l)
			}
			target = l
		}
		return target, false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	fi, err := os.Stat(target)
	switch {
	case err != nil:
		return "", false, fmt.Errorf("write %s: %w", path, err)
	case fi.IsDir():
		return "", false, fmt.Errorf("write %s: it is a directory", path)
	}
	return target, !fi.Mode().IsRegular(), nil
}

// writeInto writes r into the device or FIFO at path, as a shell
// redirection does: opened for writing, never created, truncated or
// replaced.
func writeInto(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// loadToFile replaces path with the payload load returns, or leaves it as it
// was. load is given the temporary file that becomes path: a backend that
// downloads payloads (S3) downloads straight into it, so that the payload
// is written once.
func loadToFile(path string, load func(spool *os.File) (*storage.Checkpoint, error)) error {
	pf, err := pendingFile(path)
	if err != nil {
		return err
	}
	defer pf.Cleanup()
	cp, err := load(pf.File)
	if err != nil {
		return err
	}
	defer cp.Close()
	if !cp.Spooled {
		if _, err := io.Copy(pf, cp); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// pendingFile returns the temporary file, in path's own directory, that
// replaces path once complete.
func pendingFile(path string) (*renameio.PendingFile, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Dir(abs)); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("write %s: directory %s does not exist", path, filepath.Dir(abs))
	}
	pf, err := renameio.NewPendingFile(abs, renameio.WithTempDir(filepath.Dir(abs)), renameio.WithPermissions(0o600), renameio.WithExistingPermissions())
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return pf, nil
}

// writeFileAtomically replaces path with the contents of r, or leaves it as
// it was.
func writeFileAtomically(path string, r io.Reader) error {
	pf, err := pendingFile(path)
	if err != nil {
		return err
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

// looksBinary reports whether head, the start of a payload (all of it when
// whole), is not text a terminal shows as it is: not UTF-8, or holding NUL,
// DEL or other control characters than tab, newline, carriage return and
// form feed. Escape sequences count as binary. A character cut in two at
// the end of a partial head is no evidence.
func looksBinary(head []byte, whole bool) bool {
	for i := 0; i < len(head); {
		r, n := utf8.DecodeRune(head[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			return whole || utf8.FullRune(head[i:])
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f',
			0x7f <= r && r < 0xa0:
			return true
		}
		i += n
	}
	return false
}
