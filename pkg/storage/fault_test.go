package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// faultFS is a fileSystem that fails the nth operation labelled op
// (counting from 1) with errno. Labels name the operation and the kind of
// file ("write tmp-create", "link payload", "rename session", "fsync dir"),
// not its random name, so that a save's parallel writes (its payload and
// the manifest it keeps as history) are counted apart. A failing write
// writes half its buffer first: a short write.
type faultFS struct {
	osFS
	op      string
	nth     int
	errno   syscall.Errno
	mu      sync.Mutex
	ops     []string       // labels in the order they came
	count   map[string]int // per label
	fired   bool
	renamed bool // a manifest was renamed over session
}

var randomSuffix = regexp.MustCompile(`-[0-9a-f]{12}$`)

// fileLabel names the kind of file at path.
func fileLabel(path string) string {
	b := filepath.Base(path)
	switch {
	case strings.HasPrefix(b, TempPrefix):
		return "tmp-" + randomSuffix.ReplaceAllString(strings.TrimPrefix(b, TempPrefix), "")
	case strings.HasPrefix(b, PayloadPrefix):
		return "payload"
	}
	return b
}

func (f *faultFS) do(label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.count == nil {
		f.count = map[string]int{}
	}
	f.ops = append(f.ops, label)
	f.count[label]++
	if label == f.op && f.count[label] == f.nth {
		f.fired = true
		return fmt.Errorf("injected %s failure: %w", label, f.errno)
	}
	return nil
}

func (f *faultFS) CreateExcl(name string, perm os.FileMode) (file, error) {
	label := fileLabel(name)
	if err := f.do("create " + label); err != nil {
		return nil, err
	}
	fl, err := f.osFS.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: fl, fs: f, label: label}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.do("rename " + fileLabel(newpath)); err != nil {
		return err
	}
	err := f.osFS.Rename(oldpath, newpath)
	if err == nil && filepath.Base(newpath) == CheckpointFile {
		f.mu.Lock()
		f.renamed = true
		f.mu.Unlock()
	}
	return err
}

func (f *faultFS) Link(oldpath, newpath string) error {
	if err := f.do("link " + fileLabel(newpath)); err != nil {
		return err
	}
	return f.osFS.Link(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	if err := f.do("remove " + fileLabel(name)); err != nil {
		return err
	}
	return f.osFS.Remove(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.do("fsync dir"); err != nil {
		return err
	}
	return f.osFS.SyncDir(dir)
}

type faultFile struct {
	file
	fs    *faultFS
	label string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.do("write " + f.label); err != nil {
		n, _ := f.file.Write(p[:len(p)/2])
		return n, err
	}
	return f.file.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.do("fsync " + f.label); err != nil {
		return err
	}
	return f.file.Sync()
}

func (f *faultFile) Close() error {
	if err := f.fs.do("close " + f.label); err != nil {
		f.file.Close()
		return err
	}
	return f.file.Close()
}

// faultSession returns a session with three generations saved, so that the
// next save both keeps a generation and drops one (keep 2), and its Dir,
// whose fs the test replaces.
func faultSession(t *testing.T) (*Session, *Dir) {
	t.Helper()
	d := newTestDir(t)
	ctx := context.Background()
	s, err := Init(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := s.Save(ctx, strings.NewReader(fmt.Sprint("generation ", i)), Keep(2)); err != nil {
			t.Fatal(err)
		}
	}
	return s, d
}

// newTestDir returns the backend of a new, empty session directory.
func newTestDir(t *testing.T) *Dir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	d, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func loadString(t *testing.T, s *Session) string {
	t.Helper()
	cp, err := s.Load(context.Background(), Strict())
	if err != nil {
		t.Fatalf("strict load after the failed save: %v", err)
	}
	defer cp.Close()
	b, err := io.ReadAll(cp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSaveFaults fails each file-system operation of a local save in turn,
// with each of ENOSPC, EIO and EROFS, and checks that the save reports it,
// that the previous checkpoint is intact (or, for a failure after the
// rename, the new one), that no live lock and no temporary file is left,
// and that the next save succeeds. (faults_test.go does the same one level
// up, through the Backend, for every backend.)
func TestSaveFaults(t *testing.T) {
	newPayload := strings.Repeat("new state ", 40000) // several writes
	ctx := context.Background()

	// Count the operations of a clean save.
	probe := &faultFS{}
	s, d := faultSession(t)
	d.fs = probe
	if _, err := s.Save(ctx, strings.NewReader(newPayload), Keep(2)); err != nil {
		t.Fatal(err)
	}
	t.Logf("a save's %d file-system operations: %s", len(probe.ops), strings.Join(probe.ops, ", "))
	var targets []string
	seen := map[string]int{}
	for _, op := range probe.ops {
		seen[op]++
		targets = append(targets, fmt.Sprintf("%s#%d", op, seen[op]))
	}

	for _, target := range targets {
		op, nthStr, _ := strings.Cut(target, "#")
		nth, _ := strconv.Atoi(nthStr)
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EROFS} {
			t.Run(fmt.Sprintf("%s-%s", strings.ReplaceAll(target, " ", "_"), errno), func(t *testing.T) {
				s, d := faultSession(t)
				ffs := &faultFS{op: op, nth: nth, errno: errno}
				d.fs = ffs
				_, err := s.Save(ctx, strings.NewReader(newPayload), Keep(2))
				d.fs = osFS{}
				if !ffs.fired {
					t.Skip("not reached")
				}
				// Removing what a save no longer needs may fail
				// silently: it leaves orphans that gc sweeps.
				cleanup := strings.HasPrefix(op, "remove")
				if !errors.Is(err, errno) && !(err == nil && cleanup) {
					t.Fatalf("save with %s failing: got error %v, want %v", op, err, errno)
				}
				want := "generation 3"
				if ffs.renamed {
					want = newPayload
					if err != nil && !strings.Contains(err.Error(), "renamed into place") && !strings.Contains(err.Error(), "was saved") {
						t.Errorf("a failure after the rename must say the checkpoint is in place: %v", err)
					}
				}
				if got := loadString(t, s); got != want {
					t.Errorf("after a failed save the checkpoint is %.30q, want %.30q", got, want)
				}
				if l, err := d.InspectLock(ctx, NextFile); err != nil || (l != nil && !l.Stale) {
					t.Errorf("after the save: lock %+v, %v; want none, or a stale one", l, err)
				} else if l != nil {
					if op != "remove session.next" {
						t.Errorf("a stale lock is left although its removal did not fail: %+v", l)
					}
					if _, err := s.BreakLock(ctx, false); err != nil {
						t.Fatal(err)
					}
				}
				des, err := os.ReadDir(d.path)
				if err != nil {
					t.Fatal(err)
				}
				for _, de := range des {
					if strings.HasPrefix(de.Name(), TempPrefix) && !cleanup {
						t.Errorf("%s left behind", de.Name())
					}
				}
				if _, err := s.Save(ctx, strings.NewReader("after"), Keep(2)); err != nil {
					t.Fatalf("the save after a failed one: %v", err)
				}
				if got := loadString(t, s); got != "after" {
					t.Errorf("after the next save the checkpoint is %q", got)
				}
			})
		}
	}
}

// TestFullDisk fills a real, small tmpfs: the save fails with ENOSPC and a
// clear message, the previous checkpoint is intact, nothing is left behind,
// and a save that fits succeeds afterwards. It needs root to mount.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	mountSmallTmpfs(t, mnt)
	dir := filepath.Join(mnt, "s")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	b, err := OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Save(ctx, strings.NewReader("small and safe")); err != nil {
		t.Fatal(err)
	}
	_, err = d.Save(ctx, strings.NewReader(strings.Repeat("x", 4<<20)))
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("save of 4 MiB into 1 MiB: got %v, want ENOSPC", err)
	}
	if got := loadString(t, d); got != "small and safe" {
		t.Fatalf("after ENOSPC the checkpoint is %.30q", got)
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if de.Name() == NextFile || strings.HasPrefix(de.Name(), TempPrefix) {
			t.Errorf("%s left behind on a full disk", de.Name())
		}
	}
	if _, err := d.Save(ctx, strings.NewReader("fits")); err != nil {
		t.Fatalf("a save that fits, after ENOSPC: %v", err)
	}
	if got := loadString(t, d); got != "fits" {
		t.Fatalf("checkpoint is %q", got)
	}
}
