package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// faultFS is a fileSystem that fails its failAt'th operation (counting from
// 1) with errno. A failing write writes half its buffer first: a short write.
type faultFS struct {
	osFS
	failAt  int
	errno   syscall.Errno
	ops     []string
	renamed bool // the rename of session.next over session happened
}

func (f *faultFS) op(name string) error {
	f.ops = append(f.ops, name)
	if len(f.ops) == f.failAt {
		return fmt.Errorf("injected %s failure: %w", name, f.errno)
	}
	return nil
}

func (f *faultFS) CreateExcl(name string, perm os.FileMode) (file, error) {
	if err := f.op("create"); err != nil {
		return nil, err
	}
	fl, err := f.osFS.CreateExcl(name, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{file: fl, fs: f}, nil
}

func (f *faultFS) Rename(oldpath, newpath string) error {
	if err := f.op("rename"); err != nil {
		return err
	}
	err := f.osFS.Rename(oldpath, newpath)
	f.renamed = err == nil
	return err
}

func (f *faultFS) Link(oldpath, newpath string) error {
	if err := f.op("link " + filepath.Base(newpath)); err != nil {
		return err
	}
	return f.osFS.Link(oldpath, newpath)
}

func (f *faultFS) Remove(name string) error {
	if err := f.op("remove " + filepath.Base(name)); err != nil {
		return err
	}
	return f.osFS.Remove(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if err := f.op("fsync dir"); err != nil {
		return err
	}
	return f.osFS.SyncDir(dir)
}

type faultFile struct {
	file
	fs *faultFS
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.op("write"); err != nil {
		n, _ := f.file.Write(p[:len(p)/2])
		return n, err
	}
	return f.file.Write(p)
}

func (f *faultFile) Sync() error {
	if err := f.fs.op("fsync"); err != nil {
		return err
	}
	return f.file.Sync()
}

func (f *faultFile) Close() error {
	if err := f.fs.op("close"); err != nil {
		f.file.Close()
		return err
	}
	return f.file.Close()
}

// faultSession returns a session with three generations saved, so that the
// next save both keeps a generation and drops one (keep 2).
func faultSession(t *testing.T) *Dir {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "s")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := Init(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := d.Save(ctx, strings.NewReader(fmt.Sprint("generation ", i)), Keep(2)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func loadString(t *testing.T, d *Dir) string {
	t.Helper()
	cp, err := d.Load(context.Background(), Strict())
	if err != nil {
		t.Fatalf("load after the failed save: %v", err)
	}
	defer cp.Close()
	b, err := io.ReadAll(cp)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestSaveFaults fails each file-system operation of a save in turn, with
// each of ENOSPC, EIO and EROFS, and checks that the save reports it, that
// the previous checkpoint is intact (or, for a failure after the rename, the
// new one, with an error saying so), that no lock or temporary file is left,
// and that the next save succeeds.
func TestSaveFaults(t *testing.T) {
	newPayload := strings.Repeat("new state ", 40000) // several writes
	ctx := context.Background()

	// Count the operations of a clean save.
	probe := &faultFS{}
	d := faultSession(t)
	d.fs = probe
	if _, err := d.Save(ctx, strings.NewReader(newPayload), Keep(2)); err != nil {
		t.Fatal(err)
	}
	if len(probe.ops) < 8 {
		t.Fatalf("a save made only %d operations: %v", len(probe.ops), probe.ops)
	}
	t.Logf("a save's %d file-system operations: %s", len(probe.ops), strings.Join(probe.ops, ", "))

	failures := 0
	for n := 1; n <= len(probe.ops); n++ {
		for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EIO, syscall.EROFS} {
			t.Run(fmt.Sprintf("%d-%s-%s", n, strings.ReplaceAll(probe.ops[n-1], " ", "_"), errno), func(t *testing.T) {
				d := faultSession(t)
				ffs := &faultFS{failAt: n, errno: errno}
				d.fs = ffs
				_, err := d.Save(ctx, strings.NewReader(newPayload), Keep(2))
				if !errors.Is(err, errno) {
					t.Fatalf("save with %s failing: got error %v, want %v", probe.ops[n-1], err, errno)
				}
				failures++
				want := "generation 3"
				if ffs.renamed {
					want = newPayload
					if !strings.Contains(err.Error(), "renamed into place") && !strings.Contains(err.Error(), "was saved") {
						t.Errorf("a failure after the rename must say the checkpoint is in place: %v", err)
					}
				}
				if got := loadString(t, d); got != want {
					t.Errorf("after a failed save the checkpoint is %.30q, want %.30q", got, want)
				}
				des, err := os.ReadDir(d.path)
				if err != nil {
					t.Fatal(err)
				}
				for _, de := range des {
					if de.Name() == NextFile || strings.HasPrefix(de.Name(), TempPrefix) {
						t.Errorf("%s left behind", de.Name())
					}
				}
				d.fs = osFS{}
				if _, err := d.Save(ctx, strings.NewReader("after"), Keep(2)); err != nil {
					t.Fatalf("the save after a failed one: %v", err)
				}
				if got := loadString(t, d); got != "after" {
					t.Errorf("after the next save the checkpoint is %q", got)
				}
			})
		}
	}
	t.Logf("operations failed: %d", failures)
}

// TestFullDisk fills a real, small tmpfs: the save fails with ENOSPC and a
// clear message, the previous checkpoint is intact, nothing is left behind,
// and a save that fits succeeds afterwards. It needs root to mount.
func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("skipped: cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, 0) })
	dir := filepath.Join(mnt, "s")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := Init(ctx, dir)
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
