package repository_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Verify classifies what it finds: an intact session is no finding, a
// payload with a flipped byte is corrupt, a session whose manifest cannot
// be read is unreadable, and ids that name no session (or are invalid) are
// errors of their own, not findings.
func TestVerifyClassifies(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "sessions")
	r, err := repository.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	save := func(prefix string) *storage.Session {
		t.Helper()
		s := mustCreate(t, r, repository.CreateOptions{Prefix: prefix})
		if _, err := s.Save(t.Context(), strings.NewReader("state of "+prefix)); err != nil {
			t.Fatal(err)
		}
		return s
	}
	good, bad, gone := save("good"), save("bad"), save("gone")

	rep, err := r.Verify(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verified != 3 || len(rep.Findings) != 0 || rep.Corrupt != 0 || len(rep.Errs) != 0 {
		t.Fatalf("three intact sessions: %+v", rep)
	}

	// Flip a byte of bad's payload object, and make gone's manifest a
	// directory, which no read can take for a file.
	payloads, err := filepath.Glob(filepath.Join(root, bad.ID(), "payload-*"))
	if err != nil || len(payloads) != 1 {
		t.Fatalf("payload objects of %s: %v %v", bad.ID(), payloads, err)
	}
	b, err := os.ReadFile(payloads[0])
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(payloads[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(root, gone.ID(), storage.CheckpointFile)
	if err := os.Remove(manifest); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(manifest, 0o700); err != nil {
		t.Fatal(err)
	}

	rep, err = r.Verify(t.Context(), []string{good.ID(), bad.ID(), gone.ID(), "no-such-session", "BAD"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verified != 3 {
		t.Errorf("Verified = %d, want 3", rep.Verified)
	}
	if rep.Corrupt != 1 {
		t.Errorf("Corrupt = %d, want 1; findings %+v", rep.Corrupt, rep.Findings)
	}
	kinds := map[string]string{}
	for _, f := range rep.Findings {
		if f.Session == good.ID() {
			t.Errorf("a finding for the intact session: %+v", f)
		}
		kinds[f.Session] += f.Kind + " "
	}
	if !strings.Contains(kinds[bad.ID()], storage.ProblemCorrupt) {
		t.Errorf("the session with a flipped byte: %q, want corrupt", kinds[bad.ID()])
	}
	if kinds[gone.ID()] != storage.ProblemUnreadable+" " {
		t.Errorf("the session whose manifest is a directory: %q, want unreadable", kinds[gone.ID()])
	}
	if len(rep.Errs) != 2 || !errors.Is(rep.Errs[0], storage.ErrNotFound) || !errors.Is(rep.Errs[1], repository.ErrInvalidID) {
		t.Errorf("Errs = %v, want not found, then invalid id", rep.Errs)
	}
}
