package repository_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// newRepo opens a repository whose root does not exist yet.
func newRepo(t *testing.T) *repository.Repository {
	t.Helper()
	r, err := repository.Open(filepath.Join(t.TempDir(), "sessions"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return r
}

func mustCreate(t *testing.T, r *repository.Repository, o repository.CreateOptions) *storage.Session {
	t.Helper()
	s, err := r.Create(t.Context(), o)
	if err != nil {
		t.Fatalf("Create(%+v): %v", o, err)
	}
	return s
}

var invalidIDs = []struct {
	name, id string
}{
	{"empty", ""},
	{"dot", "."},
	{"dot dot", ".."},
	{"parent path", "../x"},
	{"deeper parent path", "../../etc"},
	{"slash", "a/b"},
	{"absolute", "/etc"},
	{"trailing slash", "a/"},
	{"hidden", ".hidden"},
	{"trash", storage.TrashPrefix + "x"},
	{"too long", strings.Repeat("a", 200)},
	{"one over the limit", strings.Repeat("a", repository.MaxIDLen+1)},
	{"upper case", "UPPER"},
	{"unicode", "ünïcode"},
	{"space", "a b"},
	{"nul", "a\x00b"},
	{"newline", "a\n"},
	{"backslash", `a\b`},
	{"tilde", "~"},
}

func TestValidateID(t *testing.T) {
	valid := []string{
		"nightly-abcdefghijkl",
		"a",
		"0",
		"_x",
		"a.b",
		"a..b",
		"session-2026.11.22_run",
		strings.Repeat("a", repository.MaxIDLen),
	}
	for _, id := range valid {
		t.Run("valid "+truncate(id), func(t *testing.T) {
			if err := repository.ValidateID(id); err != nil {
				t.Errorf("ValidateID(%q) = %v, want nil", id, err)
			}
		})
	}
	for _, tt := range invalidIDs {
		t.Run("invalid "+tt.name, func(t *testing.T) {
			err := repository.ValidateID(tt.id)
			if !errors.Is(err, repository.ErrInvalidID) {
				t.Errorf("ValidateID(%q) = %v, want ErrInvalidID", tt.id, err)
			}
		})
	}
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}

// An invalid id never reaches the file system: not to open, not to remove.
func TestOpenInvalidID(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "repo")
	if err := os.Mkdir(root, 0o700); err != nil {
		t.Fatal(err)
	}
	// Sessions outside the repository that a path-like id would name.
	for _, p := range []string{filepath.Join(base, "x"), filepath.Join(base, "etc"), filepath.Join(root, ".hidden")} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		d, err := storage.OpenDir(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := storage.Init(t.Context(), d); err != nil {
			t.Fatal(err)
		}
	}
	r, err := repository.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, base)
	for _, tt := range invalidIDs {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := r.Open(context.Background(), tt.id); !errors.Is(err, repository.ErrInvalidID) || s != nil {
				t.Errorf("Open(%q) = %v, %v; want ErrInvalidID", tt.id, s, err)
			}
			for _, force := range []bool{false, true} {
				if err := r.Remove(t.Context(), tt.id, force); !errors.Is(err, repository.ErrInvalidID) {
					t.Errorf("Remove(%q, %v) = %v, want ErrInvalidID", tt.id, force, err)
				}
			}
		})
	}
	if after := snapshot(t, base); !slices.Equal(before, after) {
		t.Errorf("the file system changed:\nbefore %q\nafter  %q", before, after)
	}
}

// snapshot lists every path under dir with its mode and modification time.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %v %d", p, fi.Mode(), fi.ModTime().UnixNano()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSlug(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"Nightly Run!", "nightly-run"},
		{"nightly", "nightly"},
		{"", repository.DefaultPrefix},
		{"!!!", repository.DefaultPrefix},
		{"   ", repository.DefaultPrefix},
		{"--__--", repository.DefaultPrefix},
		{"ünïcode Straße", "unicode-strasse"},
		{"a/b/../c", "a-b-c"},
		{"CI #1234: smoke", "ci-1234-smoke"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := repository.Slug(tt.in); got != tt.want {
				t.Errorf("Slug(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}

	long := []string{
		strings.Repeat("a", 100),
		strings.Repeat("abc ", 25), // cut at 40 it would end in '-'
		strings.Repeat("abc_", 25), // cut at 40 it would end in '_'
		strings.Repeat("Wörd ", 20),
		strings.Repeat("ab-", 40),
	}
	for _, in := range long {
		t.Run("long "+truncate(in), func(t *testing.T) {
			got := repository.Slug(in)
			if len(got) == 0 || len(got) > repository.MaxPrefixLen {
				t.Errorf("Slug(%q) = %q, %d characters; want 1 to %d", in, got, len(got), repository.MaxPrefixLen)
			}
			if strings.HasSuffix(got, "-") || strings.HasSuffix(got, "_") {
				t.Errorf("Slug(%q) = %q ends in a separator", in, got)
			}
			if err := repository.ValidateID(got + "-abcdefghijkl"); err != nil {
				t.Errorf("Slug(%q) = %q makes an invalid id: %v", in, got, err)
			}
		})
	}
}

var idPattern = regexp.MustCompile(`^([a-z0-9_-]+)-([a-z2-7]{12})$`)

func TestCreate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)

	r := newRepo(t)
	d := mustCreate(t, r, repository.CreateOptions{
		Prefix: "Nightly Run!", Title: "nightly 2026-11-22", App: "suite/v1", Flags: []string{"incomplete", "ci"},
	})
	m := idPattern.FindStringSubmatch(d.ID())
	if m == nil || m[1] != "nightly-run" {
		t.Fatalf("id %q, want nightly-run-<12 lowercase base32 characters>", d.ID())
	}
	if err := repository.ValidateID(d.ID()); err != nil {
		t.Errorf("Create made an invalid id: %v", err)
	}
	if d.Location() != filepath.Join(r.Root(), d.ID()) {
		t.Errorf("Path = %q, want it in the repository", d.Location())
	}
	for _, p := range []string{r.Root(), d.Location()} {
		if fi, err := os.Lstat(p); err != nil || fi.Mode() != fs.ModeDir|0o700 {
			t.Errorf("mode of %s = %v, %v; want drwx------", p, fi.Mode(), err)
		}
	}
	des, err := os.ReadDir(d.Location())
	if err != nil {
		t.Fatal(err)
	}
	hasCheckpoint := false
	for _, de := range des {
		fi, err := de.Info()
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case de.Name() == storage.NextFile || strings.HasPrefix(de.Name(), storage.TempPrefix):
			t.Errorf("Create left the writer's file %s behind", de.Name())
		case fi.IsDir() && fi.Mode() != fs.ModeDir|0o700, !fi.IsDir() && fi.Mode() != 0o600:
			t.Errorf("mode of %s = %v, want 0600 for a file, 0700 for a directory", de.Name(), fi.Mode())
		}
		hasCheckpoint = hasCheckpoint || de.Name() == storage.CheckpointFile
	}
	if !hasCheckpoint {
		t.Errorf("the new session has no %s file", storage.CheckpointFile)
	}

	s, err := r.Open(context.Background(), d.ID())
	if err != nil {
		t.Fatalf("Open(%q): %v", d.ID(), err)
	}
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	h := st.Header
	if h == nil || h.Generation != 0 || h.Title != "nightly 2026-11-22" || h.App != "suite/v1" || !slices.Equal(h.Flags, []string{"ci", "incomplete"}) || st.Lock != nil {
		t.Errorf("Stat = %+v, header %+v; want generation 0 with the title, app and sorted flags", st, h)
	}
	if _, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) {
		t.Errorf("Load of a new session: error = %v, want ErrNoCheckpoint", err)
	}

	t.Run("default prefix", func(t *testing.T) {
		d := mustCreate(t, r, repository.CreateOptions{Prefix: "!!!"})
		if m := idPattern.FindStringSubmatch(d.ID()); m == nil || m[1] != repository.DefaultPrefix {
			t.Errorf("id %q, want %s-<suffix>", d.ID(), repository.DefaultPrefix)
		}
	})
}

func TestCreateConcurrent(t *testing.T) {
	const n = 200
	r := newRepo(t)
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			d, err := r.Create(t.Context(), repository.CreateOptions{Prefix: "race"})
			if err != nil {
				t.Errorf("Create %d: %v", i, err)
				return
			}
			ids[i] = d.ID()
		})
	}
	wg.Wait()

	seen := map[string]bool{}
	for _, id := range ids {
		if !idPattern.MatchString(id) || seen[id] {
			t.Errorf("id %q is malformed or given twice", id)
		}
		seen[id] = true
	}
	des, err := os.ReadDir(r.Root())
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != n {
		t.Errorf("the repository holds %d entries, want %d", len(des), n)
	}
	for _, de := range des {
		if !de.IsDir() || !seen[de.Name()] {
			t.Errorf("unexpected entry %s", de.Name())
		}
	}
	entries, err := r.List(t.Context(), repository.Filter{})
	if err != nil || len(entries) != n {
		t.Errorf("List = %d entries, %v; want %d", len(entries), err, n)
	}
}

func TestCreateInvalidMetadata(t *testing.T) {
	tests := []struct {
		name string
		o    repository.CreateOptions
	}{
		{"flag with a space", repository.CreateOptions{Flags: []string{"bad flag"}}},
		{"upper-case flag", repository.CreateOptions{Flags: []string{"ok", "Bad"}}},
		{"title too long", repository.CreateOptions{Title: strings.Repeat("t", checkpoint.MaxTitleLen+1)}},
		{"app not UTF-8", repository.CreateOptions{App: "\xff"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			d, err := r.Create(t.Context(), tt.o)
			if !errors.Is(err, checkpoint.ErrInvalid) || d != nil {
				t.Fatalf("Create = %v, %v; want checkpoint.ErrInvalid", d, err)
			}
			des, err := os.ReadDir(r.Root())
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatal(err)
			}
			if len(des) != 0 {
				t.Errorf("Create left %d entries behind, first %s", len(des), des[0].Name())
			}
		})
	}
}

func TestOpenRoot(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link-to-file")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		root    string
		wantErr bool
	}{
		{"relative", "sessions", true},
		{"dot relative", "./sessions", true},
		{"empty", "", true},
		{"regular file", file, true},
		{"symlink to a regular file", link, true},
		{"missing", filepath.Join(base, "missing"), false},
		{"existing directory", base, false},
		{"unclean", base + "/./x/..", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := repository.Open(tt.root)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Open(%q) = %v, %v; want error: %v", tt.root, r, err, tt.wantErr)
			}
			if err == nil && r.Root() != filepath.Clean(tt.root) {
				t.Errorf("Root() = %q, want %q", r.Root(), filepath.Clean(tt.root))
			}
		})
	}

	t.Run("missing root is not created by Open or List", func(t *testing.T) {
		root := filepath.Join(base, "later")
		r, err := repository.Open(root)
		if err != nil {
			t.Fatal(err)
		}
		entries, err := r.List(t.Context(), repository.Filter{})
		if err != nil || len(entries) != 0 {
			t.Errorf("List = %v, %v; want no entries and no error", entries, err)
		}
		if _, err := os.Lstat(root); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the root exists after Open and List: %v", err)
		}
		if _, err := r.Open(context.Background(), "nightly-abcdefghijkl"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open of a session in a missing root: error = %v, want storage.ErrNotFound", err)
		}
	})
}
