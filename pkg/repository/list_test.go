package repository_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func ids(entries []repository.Entry) []string {
	var out []string
	for _, e := range entries {
		out = append(out, e.ID)
	}
	return out
}

func TestListOrderAndFilter(t *testing.T) {
	r := newRepo(t)
	ctx := t.Context()
	a := mustCreate(t, r, repository.CreateOptions{Prefix: "nightly", Flags: []string{"incomplete"}})
	b := mustCreate(t, r, repository.CreateOptions{Prefix: "Nightly", Flags: []string{"incomplete", "submitted"}})
	c := mustCreate(t, r, repository.CreateOptions{Prefix: "weekly", Flags: []string{"submitted"}})
	d := mustCreate(t, r, repository.CreateOptions{Prefix: "nightly2"})
	// a saves last, so it is the youngest; d was created last.
	if _, err := a.Save(ctx, strings.NewReader("state")); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		f    repository.Filter
		want []*storage.Session
	}{
		{"all, youngest first", repository.Filter{}, []*storage.Session{a, d, c, b}},
		{"prefix", repository.Filter{Prefix: "nightly"}, []*storage.Session{a, b}},
		{"prefix slugged", repository.Filter{Prefix: "  NIGHTLY!"}, []*storage.Session{a, b}},
		{"prefix matching nothing", repository.Filter{Prefix: "monthly"}, nil},
		{"flag", repository.Filter{Flags: []string{"submitted"}}, []*storage.Session{c, b}},
		{"every flag", repository.Filter{Flags: []string{"incomplete", "submitted"}}, []*storage.Session{b}},
		{"prefix and flag", repository.Filter{Prefix: "nightly", Flags: []string{"incomplete"}}, []*storage.Session{a, b}},
		{"flag nobody has", repository.Filter{Flags: []string{"nope"}}, nil},
		{"no flag", repository.Filter{NoFlags: []string{"submitted"}}, []*storage.Session{a, d}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			entries, err := r.List(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, d := range tt.want {
				want = append(want, d.ID())
			}
			if got := ids(entries); !slices.Equal(got, want) {
				t.Errorf("List(%+v) = %q, want %q", tt.f, got, want)
			}
			for i, e := range entries {
				if e.Err != nil || e.Status == nil || e.Status.ID != e.ID {
					t.Errorf("entry %d = %+v, want an intact session", i, e)
				}
				if i > 0 && e.Status.Modified.After(entries[i-1].Status.Modified) {
					t.Errorf("entry %d is younger than entry %d", i, i-1)
				}
			}
		})
	}
}

// One bad entry is reported, not fatal to the listing.
func TestListDamaged(t *testing.T) {
	r := newRepo(t)
	ctx := t.Context()
	good := []*storage.Session{
		mustCreate(t, r, repository.CreateOptions{Prefix: "good"}),
		mustCreate(t, r, repository.CreateOptions{Prefix: "good"}),
	}
	root := r.Root()
	elsewhere := mustCreate(t, newRepo(t), repository.CreateOptions{Prefix: "elsewhere"})

	garbage := mustCreate(t, r, repository.CreateOptions{Prefix: "garbage"})
	if err := os.WriteFile(filepath.Join(garbage.Location(), storage.CheckpointFile), []byte("not a checkpoint"), 0o600); err != nil {
		t.Fatal(err)
	}
	linked := mustCreate(t, r, repository.CreateOptions{Prefix: "linked"})
	cp := filepath.Join(linked.Location(), storage.CheckpointFile)
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(elsewhere.Location(), storage.CheckpointFile), cp); err != nil {
		t.Fatal(err)
	}
	fifo := mustCreate(t, r, repository.CreateOptions{Prefix: "fifo"})
	cp = filepath.Join(fifo.Location(), storage.CheckpointFile)
	if err := os.Remove(cp); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(cp, 0o600); err != nil {
		t.Fatal(err)
	}
	plant := map[string]func(path string) error{
		"symlink-abcdefghijkl": func(p string) error { return os.Symlink(elsewhere.Location(), p) },
		"stray-abcdefghijkl":   func(p string) error { return os.WriteFile(p, []byte("x"), 0o600) },
		"UPPER":                func(p string) error { return os.Mkdir(p, 0o700) },
		"with space":           func(p string) error { return os.Mkdir(p, 0o700) },
		".trash-x":             func(p string) error { return os.Mkdir(p, 0o700) },
		".hidden":              func(p string) error { return os.WriteFile(p, nil, 0o600) },
	}
	for name, f := range plant {
		if err := f(filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	wantDamaged := map[string]error{
		garbage.ID():           nil, // a *checkpoint.CorruptError, checked below
		linked.ID():            storage.ErrSymlink,
		fifo.ID():              nil,
		"symlink-abcdefghijkl": storage.ErrSymlink,
		"stray-abcdefghijkl":   nil,
		"UPPER":                repository.ErrInvalidID,
		"with space":           repository.ErrInvalidID,
	}

	done := make(chan struct{})
	var entries []repository.Entry
	var err error
	go func() {
		defer close(done)
		entries, err = r.List(ctx, repository.Filter{})
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("List blocked on a damaged entry")
	}
	if err != nil {
		t.Fatalf("List: %v", err)
	}

	var intact []string
	for _, e := range entries {
		if strings.HasPrefix(e.ID, ".") {
			t.Errorf("List reported hidden entry %q", e.ID)
			continue
		}
		want, damaged := wantDamaged[e.ID]
		switch {
		case !damaged:
			if e.Err != nil || e.Status == nil {
				t.Errorf("intact %s listed as %+v", e.ID, e)
			}
			intact = append(intact, e.ID)
			continue
		case e.Err == nil || e.Status != nil:
			t.Errorf("damaged %s listed as %+v, want an error and no status", e.ID, e)
		case want != nil && !errors.Is(e.Err, want):
			t.Errorf("damaged %s: error = %v, want %v", e.ID, e.Err, want)
		}
		delete(wantDamaged, e.ID)
	}
	for id := range wantDamaged {
		t.Errorf("damaged entry %s is missing from the listing", id)
	}
	slices.Sort(intact)
	want := []string{good[0].ID(), good[1].ID()}
	slices.Sort(want)
	if !slices.Equal(intact, want) {
		t.Errorf("intact entries %q, want %q", intact, want)
	}
	// Damaged entries have no time: they sort after the intact ones.
	if len(entries) > 2 && (entries[0].Err != nil || entries[1].Err != nil) {
		t.Errorf("damaged entries sorted first: %q", ids(entries))
	}
	// A prefix filter applies to damaged entries too.
	entries, err = r.List(ctx, repository.Filter{Prefix: "good"})
	if err != nil || len(entries) != 2 {
		t.Errorf("List(prefix good) = %q, %v; want the two good sessions", ids(entries), err)
	}
}

// Sessions created and removed by others while List runs are not errors, and
// sessions nobody touches are always listed.
func TestListWhileCreatingAndRemoving(t *testing.T) {
	r := newRepo(t)
	ctx := t.Context()
	var stable []string
	for range 3 {
		stable = append(stable, mustCreate(t, r, repository.CreateOptions{Prefix: "stable"}).ID())
	}

	const churners, cycles = 4, 25
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		lists   atomic.Int64
		created atomic.Int64
	)
	for w := range churners {
		wg.Go(func() {
			for range cycles {
				d, err := r.Create(ctx, repository.CreateOptions{Prefix: "churn"})
				if err != nil {
					t.Errorf("churner %d: Create: %v", w, err)
					return
				}
				created.Add(1)
				if _, err := d.Save(ctx, strings.NewReader("x")); err != nil {
					t.Errorf("churner %d: Save: %v", w, err)
					return
				}
				if err := r.Remove(ctx, d.ID(), false); err != nil {
					t.Errorf("churner %d: Remove: %v", w, err)
					return
				}
			}
		})
	}
	var listers sync.WaitGroup
	for l := range 2 {
		listers.Go(func() {
			for !stop.Load() {
				entries, err := r.List(ctx, repository.Filter{})
				if err != nil {
					t.Errorf("lister %d: List: %v", l, err)
					return
				}
				lists.Add(1)
				got := map[string]bool{}
				for _, e := range entries {
					got[e.ID] = true
					if e.Err != nil {
						t.Errorf("lister %d: %s listed as damaged: %v", l, e.ID, e.Err)
					}
					if strings.HasPrefix(e.ID, ".") {
						t.Errorf("lister %d: hidden %s listed", l, e.ID)
					}
				}
				for _, id := range stable {
					if !got[id] {
						t.Errorf("lister %d: untouched session %s is missing", l, id)
					}
				}
				if _, _, err := r.Last(ctx, repository.Filter{Prefix: "stable"}); err != nil {
					t.Errorf("lister %d: Last: %v", l, err)
				}
			}
		})
	}
	wg.Wait()
	stop.Store(true)
	listers.Wait()

	entries, err := r.List(ctx, repository.Filter{})
	if err != nil || len(entries) != len(stable) {
		t.Errorf("List at the end = %q, %v; want the %d stable sessions", ids(entries), err, len(stable))
	}
	des, err := os.ReadDir(r.Root())
	if err != nil || len(des) != len(stable) {
		t.Errorf("the repository holds %d entries, %v; want %d (no trash left)", len(des), err, len(stable))
	}
	t.Logf("%d sessions created and removed during %d listings", created.Load(), lists.Load())
}

// Last reads manifests youngest first and stops once no older one can be
// younger than what it found: a damaged session written long before the
// youngest match is not reported, while one written after it is.
func TestLastStopsEarly(t *testing.T) {
	r, err := repository.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	create := func(age time.Duration) *storage.Session {
		t.Helper()
		s, err := r.Create(t.Context(), repository.CreateOptions{Prefix: "nightly"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(t.Context(), strings.NewReader("state")); err != nil {
			t.Fatal(err)
		}
		when := time.Now().Add(-age)
		if err := os.Chtimes(filepath.Join(s.Location(), storage.CheckpointFile), when, when); err != nil {
			t.Fatal(err)
		}
		return s
	}
	var old []*storage.Session
	for range 40 {
		old = append(old, create(48*time.Hour))
	}
	oldDamaged := old[0]
	youngest := create(0)
	if err := os.WriteFile(filepath.Join(oldDamaged.Location(), storage.CheckpointFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(oldDamaged.Location(), storage.CheckpointFile), when, when); err != nil {
		t.Fatal(err)
	}
	st, damaged, err := r.Last(t.Context(), repository.Filter{Prefix: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != youngest.ID() {
		t.Errorf("Last = %s, want the youngest, %s", st.ID, youngest.ID())
	}
	if len(damaged) != 0 {
		t.Errorf("Last read the old damaged session: %v", damaged)
	}

	// A damaged session written after the youngest match might have been
	// younger: it is read, and reported.
	newDamaged := create(-time.Minute)
	if err := os.WriteFile(filepath.Join(newDamaged.Location(), storage.CheckpointFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	st, damaged, err = r.Last(t.Context(), repository.Filter{Prefix: "nightly"})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID != youngest.ID() || len(damaged) != 1 || damaged[0].ID != newDamaged.ID() {
		t.Errorf("Last = %s, damaged %v; want %s and %s damaged", st.ID, damaged, youngest.ID(), newDamaged.ID())
	}
}
