package storage_test

// Tests for the storage defects listed in issue 9 ("What a user meets",
// point 5). The forced BreakLock race is in breaklock_internal_test.go; a
// save on a damaged current manifest, metadata-only too, is the
// conformance suite's SaveOnDamagedManifest; history after step and mark
// generations is its HistoryAfterMarkAndStep.

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// logPath returns steps/NAME/1.log, the log of the first attempt of step
// NAME of the session in dir, its directory created.
func logPath(t *testing.T, dir, name string) string {
	t.Helper()
	logs := filepath.Join(dir, storage.StepDir, name)
	if err := os.MkdirAll(logs, 0o700); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(logs, "1.log")
}

func writeLog(t *testing.T, s *storage.Session, name, text string) {
	t.Helper()
	runStep(t, s, name, storage.StepOptions{}, text)
}

func readLog(t *testing.T, s *storage.Session, name string) string {
	t.Helper()
	r, _, err := s.StepLog(t.Context(), name, 0)
	if err != nil {
		t.Fatalf("StepLog: %v", err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A hard link planted at a log's path is replaced, not written through:
// the file outside keeps its bytes.
func TestPlantedHardLinkAtLog(t *testing.T) {
	s, dir := newSession(t)
	outside := filepath.Join(t.TempDir(), "precious")
	if err := os.WriteFile(outside, []byte("precious bytes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(outside, logPath(t, dir, "build")); err != nil {
		t.Fatal(err)
	}
	writeLog(t, s, "build", "step output\n")
	if got, err := os.ReadFile(outside); err != nil || string(got) != "precious bytes\n" {
		t.Errorf("the hard-linked file outside is now %q, %v", got, err)
	}
	if got := readLog(t, s, "build"); got != "step output\n" {
		t.Errorf("ReadLog = %q", got)
	}
}

// A FIFO planted at a log's path neither hangs OpenLog nor StepLog.
func TestPlantedFIFOAtLog(t *testing.T) {
	s, dir := newSession(t)
	fifo := logPath(t, dir, "build")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	err := within(t, fifo, func() error {
		r, _, err := s.StepLog(t.Context(), "build", 1)
		if err == nil {
			r.Close()
		}
		return err
	})
	if err == nil {
		t.Errorf("StepLog of a FIFO succeeded")
	}
	if err := within(t, fifo, func() error {
		c, err := s.StartStep(t.Context(), "build", storage.StepOptions{})
		if err != nil {
			return err
		}
		w, err := c.OpenLog(t.Context(), 0)
		if err != nil {
			return err
		}
		io.WriteString(w, "step output\n")
		if err := w.Close(); err != nil {
			return err
		}
		_, err = c.End(t.Context(), checkpoint.StepPassed, 0)
		return err
	}); err != nil {
		t.Fatalf("OpenLog over a FIFO: %v", err)
	}
	if got := readLog(t, s, "build"); got != "step output\n" {
		t.Errorf("ReadLog = %q", got)
	}
}

// A symbolic link planted at the next history name (session.<n>) does not
// block saves, and its target is neither written nor read.
func TestPlantedSymlinkAtHistoryName(t *testing.T) {
	for _, format1 := range []bool{false, true} {
		name := "format 2"
		if format1 {
			name = "format 1"
		}
		t.Run(name, func(t *testing.T) {
			var (
				s   *storage.Session
				dir string
				gen uint64
			)
			if format1 {
				d := newLocal(t)
				putV1(t, d)
				s, dir, gen = storage.New(d), d.Path(), 10
			} else {
				s, dir = newSession(t)
				mustSave(t, s, "one")
				gen = 1
			}
			target := filepath.Join(t.TempDir(), "target")
			if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			hist := filepath.Join(dir, storage.CheckpointFile+"."+strconv.FormatUint(gen, 10))
			if err := os.Symlink(target, hist); err != nil {
				t.Fatal(err)
			}
			mustSave(t, s, "two")
			wantLoad(t, s, gen+1, "two")
			if got, err := os.ReadFile(target); err != nil || string(got) != "precious" {
				t.Errorf("the symlink's target is now %q, %v", got, err)
			}
			if _, err := s.Load(t.Context(), storage.AtGeneration(gen)); err != nil {
				t.Errorf("Load(AtGeneration(%d)): %v", gen, err)
			}
			mustSave(t, s, "three", storage.WithTitle("x"))
			if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithTitle("y")); err != nil {
				t.Errorf("metadata-only save: %v", err)
			}
		})
	}
}
