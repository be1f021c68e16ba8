package storage_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// lockChildEnv, when set, makes TestCrossProcessLock act as the writer that
// holds the lock: it names the session directory.
const lockChildEnv = "CKPT_TEST_LOCK_CHILD_DIR"

// runLockChild saves into dir with a payload that blocks on stdin after its
// first bytes, telling the parent through stdout that the lock is taken. When
// stdin reaches its end the payload ends too, and the child reports the
// outcome of its save on stdout.
func runLockChild(dir string) {
	d, err := storage.Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	r := &hookReader{
		chunks: []string{big(4096, 'c'), ""},
		hook: map[int]func() error{
			// Save calls the reader only once its header, naming this
			// process, is on disk.
			0: func() error { fmt.Println("ready"); return nil },
			1: func() error { _, err := io.Copy(io.Discard, os.Stdin); return err },
		},
	}
	_, err = d.Save(context.Background(), r, storage.WithCommand("lock-holder"))
	var le *storage.LockedError
	switch {
	case err == nil:
		fmt.Println("saved")
	case errors.As(err, &le) && le.Lost:
		fmt.Println("lost")
	case errors.As(err, &le):
		fmt.Println("locked")
	default:
		fmt.Println("error:", err)
	}
	os.Exit(0)
}

// lockChild is a child process in the middle of a save into a session.
type lockChild struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  *bufio.Scanner
	stderr *lockedBuffer
	waited bool
}

// lockedBuffer is a bytes.Buffer that the goroutine exec copies the child's
// stderr with and the test can share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startLockChild starts a child that holds d's lock, and returns once the
// lock and its owner are on disk.
func startLockChild(t *testing.T, dir string) *lockChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrossProcessLock$", "-test.count=1")
	home := t.TempDir() // the child has no business in the real one
	cmd.Env = append(os.Environ(), lockChildEnv+"="+dir, "HOME="+home, "XDG_CACHE_HOME="+filepath.Join(home, ".cache"))
	c := &lockChild{cmd: cmd, stderr: new(lockedBuffer)}
	cmd.Stderr = c.stderr
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.lines = bufio.NewScanner(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !c.waited {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	if line := c.line(t); line != "ready" {
		t.Fatalf("child said %q, want ready; stderr:\n%s", line, c.stderr)
	}
	return c
}

// line returns the child's next line of output.
func (c *lockChild) line(t *testing.T) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		if c.lines.Scan() {
			got <- c.lines.Text()
		}
		close(got)
	}()
	select {
	case l, ok := <-got:
		if !ok {
			t.Fatalf("child exited without a word; stderr:\n%s", c.stderr)
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatal("child is silent after 60s")
	}
	return ""
}

func (c *lockChild) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.cmd.Wait()
	c.waited = true
}

func TestCrossProcessLock(t *testing.T) {
	if dir := os.Getenv(lockChildEnv); dir != "" {
		runLockChild(dir)
		return
	}

	t.Run("writer killed", func(t *testing.T) {
		d, dir := newSession(t)
		mustSave(t, d, "good")
		child := startLockChild(t, dir)
		pid := child.cmd.Process.Pid
		next := filepath.Join(dir, storage.NextFile)
		if !exists(t, next) {
			t.Fatalf("%s does not exist while the child saves", storage.NextFile)
		}

		// A live lock: nobody gets past it without force.
		le := lockedError(t, "Save", saveErr(t, d, "parent"))
		wantLock(t, "Save while the child saves", &le.Lock, false, pid)
		if le.Session != d.ID() || !strings.Contains(le.Error(), "live") || !strings.Contains(le.Error(), fmt.Sprint(pid)) {
			t.Errorf("LockedError = {Session %q, %q}; want the session id, the pid and \"live\"", le.Session, le.Error())
		}
		st, err := d.Stat(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		wantLock(t, "Stat while the child saves", st.Lock, false, pid)
		if st.Header.Generation != 1 {
			t.Errorf("Stat: generation %d, want 1", st.Header.Generation)
		}
		l, err := d.BreakLock(t.Context(), false)
		lockedError(t, "BreakLock(false) of a live lock", err)
		if l != nil {
			t.Errorf("BreakLock(false) refused but returned %+v", l)
		}
		if err := d.Remove(t.Context(), false); err == nil {
			t.Fatal("Remove(false) removed a session with a live writer")
		} else {
			lockedError(t, "Remove(false) of a live session", err)
		}
		if !exists(t, next) || !exists(t, dir) {
			t.Fatal("a refused BreakLock or Remove removed something")
		}
		wantLoad(t, d, 1, "good") // readers never block

		// The writer dies: its lock is provably stale.
		child.kill(t)
		le = lockedError(t, "Save after the child died", saveErr(t, d, "parent"))
		wantLock(t, "Save after the child died", &le.Lock, true, pid)
		st, err = d.Stat(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		wantLock(t, "Stat after the child died", st.Lock, true, pid)

		l, err = d.BreakLock(t.Context(), false)
		if err != nil {
			t.Fatalf("BreakLock(false) of a stale lock: %v", err)
		}
		wantLock(t, "BreakLock", l, true, pid)
		if exists(t, next) {
			t.Fatalf("BreakLock left %s", storage.NextFile)
		}
		if l, err := d.BreakLock(t.Context(), false); l != nil || err != nil {
			t.Errorf("BreakLock with no lock = %+v, %v; want nil, nil", l, err)
		}
		wantLoad(t, d, 1, "good")
		if s := mustSave(t, d, "after"); s.Header.Generation != 2 {
			t.Errorf("Save after BreakLock: generation %d, want 2", s.Header.Generation)
		}
		wantLoad(t, d, 2, "after")
	})

	t.Run("live lock broken with force", func(t *testing.T) {
		d, dir := newSession(t)
		mustSave(t, d, "good")
		child := startLockChild(t, dir)
		pid := child.cmd.Process.Pid

		l, err := d.BreakLock(t.Context(), true)
		if err != nil {
			t.Fatalf("BreakLock(true): %v", err)
		}
		wantLock(t, "BreakLock(true)", l, false, pid)
		// The child's payload, still being written, is its own
		// temporary file; only the lock is gone.
		if exists(t, filepath.Join(dir, storage.NextFile)) {
			t.Fatalf("BreakLock(true) left %s", storage.NextFile)
		}
		mustSave(t, d, "parent")

		// Let the child's payload end: its commit must notice that its
		// lock is gone and fail rather than overwrite.
		child.stdin.Close()
		if got := child.line(t); got != "lost" {
			t.Errorf("the child's save ended with %q, want a *LockedError with Lost set; stderr:\n%s", got, child.stderr)
		}
		wantLoad(t, d, 2, "parent")
		wantNoNext(t, dir)
	})
}

func saveErr(t *testing.T, d *storage.Session, payload string) error {
	t.Helper()
	s, err := d.Save(t.Context(), strings.NewReader(payload))
	if err == nil {
		t.Fatalf("Save succeeded with generation %d, want it refused", s.Header.Generation)
	}
	return err
}

// A writer whose lock is broken under it fails at its commit, and the save
// that took the lock after it wins.
func TestBreakLockForceInProcess(t *testing.T) {
	d, dir := newSession(t)
	mustSave(t, d, "before")
	var (
		broken   *storage.Lock
		breakErr error
		other    *storage.Saved
		otherErr error
	)
	r := &hookReader{
		chunks: []string{big(100<<10, 'a'), big(300<<10, 'b')},
		hook: map[int]func() error{1: func() error {
			broken, breakErr = d.BreakLock(t.Context(), true)
			other, otherErr = d.Save(t.Context(), strings.NewReader("other"), storage.WithTitle("other"))
			return nil
		}},
	}
	saved, err := d.Save(t.Context(), r, storage.WithTitle("first"))
	le := lockedError(t, "the broken writer's Save", err)
	if !le.Lost {
		t.Errorf("the broken writer's LockedError = %v, want Lost set", le)
	}
	if saved != nil {
		t.Errorf("the broken writer's Save returned %+v", saved)
	}
	if le.Session != d.ID() {
		t.Errorf("LockedError.Session = %q, want %q", le.Session, d.ID())
	}
	if breakErr != nil {
		t.Fatalf("BreakLock(true): %v", breakErr)
	}
	wantLock(t, "BreakLock(true)", broken, false, os.Getpid())
	if otherErr != nil || other.Header.Generation != 2 {
		t.Fatalf("the other Save = %+v, %v; want generation 2", other, otherErr)
	}
	cp, _ := mustLoad(t, d)
	if cp.Header.Title != "other" {
		t.Errorf("title %q, want the other save's", cp.Header.Title)
	}
	wantLoad(t, d, 2, "other")
	wantNoNext(t, dir)
}

// plantedNext is a session.next that no writer of ours made.
type plantedNext struct {
	name      string
	plant     func(t *testing.T, next string)
	wantStale bool
	wantOwner bool
	check     func(t *testing.T) // after the lock is broken
}

func TestPlantedNext(t *testing.T) {
	old := time.Now().Add(-2 * storage.CreateGrace)
	tests := []plantedNext{
		{
			name: "header-less file, old",
			plant: func(t *testing.T, next string) {
				writeFile(t, next, "not a checkpoint")
				if err := os.Chtimes(next, old, old); err != nil {
					t.Fatal(err)
				}
			},
			wantStale: true,
		},
		{
			name:  "header-less file, fresh",
			plant: func(t *testing.T, next string) { writeFile(t, next, "not a checkpoint") },
		},
		{
			name:  "empty file, fresh",
			plant: func(t *testing.T, next string) { writeFile(t, next, "") },
		},
		{
			name: "owner recorded, no flock",
			plant: func(t *testing.T, next string) {
				writeNext(t, next, os.Getpid())
			},
			wantStale: true,
			wantOwner: true,
		},
		{
			name: "owner recorded, flock held",
			plant: func(t *testing.T, next string) {
				f := writeNext(t, next, os.Getpid())
				// The planted writer stays alive until the test ends.
				if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
					t.Fatal(err)
				}
			},
			wantOwner: true,
		},
		{
			name: "fifo",
			plant: func(t *testing.T, next string) {
				if err := unix.Mkfifo(next, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantStale: true,
		},
		{
			name: "empty directory",
			plant: func(t *testing.T, next string) {
				if err := os.Mkdir(next, 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantStale: true,
		},
		symlinkCase("symlink to a file", func(t *testing.T, target string) { writeFile(t, target, "precious") }),
		symlinkCase("symlink to a checkpoint being written", func(t *testing.T, target string) {
			f := writeNext(t, target, os.Getpid())
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
				t.Fatal(err)
			}
		}),
		symlinkCase("dangling symlink", func(*testing.T, string) {}),
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, dir := newSession(t)
			mustSave(t, d, "good")
			next := filepath.Join(dir, storage.NextFile)
			tt.plant(t, next)
			pid := 0
			if tt.wantOwner {
				pid = os.Getpid()
			}

			st, err := d.Stat(t.Context())
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			wantLock(t, "Stat", st.Lock, tt.wantStale, pid)
			if !tt.wantOwner && st.Lock.Owner != nil {
				t.Errorf("Stat: lock owner = %+v, want none", st.Lock.Owner)
			}
			le := lockedError(t, "Save", saveErr(t, d, "new"))
			wantLock(t, "Save", &le.Lock, tt.wantStale, pid)
			wantLoad(t, d, 1, "good")

			l, err := d.BreakLock(t.Context(), false)
			if tt.wantStale {
				if err != nil {
					t.Fatalf("BreakLock(false) of a stale lock: %v", err)
				}
				wantLock(t, "BreakLock(false)", l, true, pid)
			} else {
				lockedError(t, "BreakLock(false) of a live lock", err)
				if !exists(t, next) {
					t.Fatal("a refused BreakLock removed the lock")
				}
				if l, err = d.BreakLock(t.Context(), true); err != nil {
					t.Fatalf("BreakLock(true): %v", err)
				}
				wantLock(t, "BreakLock(true)", l, false, pid)
			}
			wantNoNext(t, dir)
			if tt.check != nil {
				tt.check(t)
			}
			if s := mustSave(t, d, "new"); s.Header.Generation != 2 {
				t.Errorf("Save after BreakLock: generation %d, want 2", s.Header.Generation)
			}
		})
	}
}

// symlinkCase plants at session.next a symlink to a target made by make; the
// target must survive the lock being broken.
func symlinkCase(name string, make func(t *testing.T, target string)) plantedNext {
	var target string
	var before []byte
	c := plantedNext{name: name, wantStale: true}
	c.plant = func(t *testing.T, next string) {
		target = filepath.Join(t.TempDir(), "target")
		make(t, target)
		before, _ = os.ReadFile(target)
		if err := os.Symlink(target, next); err != nil {
			t.Fatal(err)
		}
	}
	c.check = func(t *testing.T) {
		after, _ := os.ReadFile(target)
		if !bytes.Equal(before, after) {
			t.Errorf("the symlink's target changed: %q, was %q", after, before)
		}
		if len(before) > 0 && !exists(t, target) {
			t.Error("the symlink's target was removed")
		}
	}
	return c
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// writeNext creates a lock file at path the way a writer does, with a header
// naming pid as its owner, and returns it open; it is closed when the test
// ends.
func writeNext(t *testing.T, path string, pid int) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	host, _ := os.Hostname()
	now := time.Now().UTC()
	h := &checkpoint.Header{Generation: 2, Saved: now, Created: now,
		Owner: &checkpoint.Owner{PID: pid, Host: host, Started: now, Command: "planted"}}
	rec, err := checkpoint.EncodeManifest(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(rec); err != nil {
		t.Fatal(err)
	}
	return f
}

// A held flock proves that some process still owns the lock, whatever the
// recorded pid looks like from here: its writer may run in another pid
// namespace (a container sharing the session volume and the host name), or
// have handed the lock to a child.
func TestLiveLockWithUnknownPID(t *testing.T) {
	d, dir := newSession(t)
	mustSave(t, d, "good")
	const unknownPID = 1 << 30 // above any pid_max: kill(2) says ESRCH
	f := writeNext(t, filepath.Join(dir, storage.NextFile), unknownPID)
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	st, err := d.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantLock(t, "Stat", st.Lock, false, unknownPID)
	if l, err := d.BreakLock(t.Context(), false); err == nil {
		t.Errorf("BreakLock(false) broke a lock whose flock is held: %+v", l)
	}
}
