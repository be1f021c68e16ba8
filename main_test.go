package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/ckpt-dev/ckpt/cmd"
	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/repository"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// TestMain lets the end-to-end scripts run ckpt, and a writer that holds a
// session's lock, as programs.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ckpt": func() {
			os.Exit(cmd.Main(os.Args[1:], cmd.IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv))
		},
		"ckpt-writer": holdLock,
	})
}

// holdLock is a writer that never finishes: it starts a save into session
// os.Args[1] of the repository ckpt would use, writes a few bytes and blocks,
// holding the session's lock until it is killed.
func holdLock() {
	s, err := openSession(context.Background(), os.Getenv, os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	_, err = s.Save(context.Background(), &blockingReader{data: []byte("partial")}, storage.WithCommand("ckpt-writer"))
	fmt.Fprintln(os.Stderr, "save returned:", err)
	os.Exit(1)
}

// openSession opens session id in the repository ckpt would use with the
// environment getenv.
func openSession(ctx context.Context, getenv func(string) string, id string) (*storage.Session, error) {
	repo := getenv("CKPT_REPOSITORY")
	if repo == "" {
		repo = filepath.Join(getenv("XDG_CACHE_HOME"), "ckpt", "sessions")
	}
	var (
		r   *repository.Repository
		err error
	)
	if s3store.IsURL(repo) {
		// Configured from getenv alone, not from this process's
		// environment, which a script's does not reach.
		o := s3store.Options{UsePathStyle: true, Endpoint: getenv("AWS_ENDPOINT_URL_S3"), Region: getenv("AWS_REGION")}
		if id := getenv("AWS_ACCESS_KEY_ID"); id != "" {
			o.Credentials = credentials.NewStaticCredentialsProvider(id, getenv("AWS_SECRET_ACCESS_KEY"), "")
		}
		o.LeaseDuration, _ = time.ParseDuration(getenv("CKPT_S3_LEASE"))
		r, err = repository.OpenS3(ctx, repo, o)
	} else {
		r, err = repository.Open(repo)
	}
	if err != nil {
		return nil, err
	}
	return r.Open(ctx, id)
}

type blockingReader struct{ data []byte }

func (r *blockingReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		select {}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestScripts runs the end-to-end scripts against a local repository, the
// default one under $XDG_CACHE_HOME.
func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams(func(e *testscript.Env) error {
		e.Setenv("REPO", filepath.Join(e.WorkDir, "cache", "ckpt", "sessions"))
		return nil
	}, true))
}

// TestScriptsS3 runs the same scripts against an S3 repository on a
// versitygw started for the test, wherever the behaviour is the same: a
// script, or a line, that inspects the local repository's files is marked
// [local] and left out.
func TestScriptsS3(t *testing.T) {
	bin, why := s3test.Find()
	if bin == "" {
		if os.Getenv("CKPT_REQUIRE_VERSITYGW") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	gw, err := s3test.Start(bin, t.TempDir(), "ckpt-scripts")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Stop() })
	var n atomic.Int64
	testscript.Run(t, scriptParams(func(e *testscript.Env) error {
		for _, kv := range gw.Env(filepath.Join(e.WorkDir, "home")) {
			k, v, _ := strings.Cut(kv, "=")
			e.Setenv(k, v)
		}
		repo := gw.URL(fmt.Sprintf("script-%d", n.Add(1)))
		e.Setenv("CKPT_REPOSITORY", repo)
		// Short leases: a killed writer's lock turns stale in seconds.
		e.Setenv("CKPT_S3_LEASE", "2s")
		e.Setenv("REPO", repo)
		return nil
	}, false))
}

func scriptParams(setup func(*testscript.Env) error, local bool) testscript.Params {
	return testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		Setup: func(e *testscript.Env) error {
			// Never the real home or cache: both live inside the script's
			// work directory.
			e.Setenv("HOME", filepath.Join(e.WorkDir, "home"))
			e.Setenv("XDG_CACHE_HOME", filepath.Join(e.WorkDir, "cache"))
			return setup(e)
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "local":
				return local, nil
			case "root":
				return os.Geteuid() == 0, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(*testscript.TestScript, bool, []string){
			"exits":    cmdExits,
			"capture":  cmdCapture,
			"waitfile": cmdWaitFile,
			"killsave": cmdKillSave,
			"damage":   cmdDamage,
			"perm":     cmdPerm,
			"backdate": cmdBackdate,
			"seedv1":   cmdSeedV1,
			"waitlock": cmdWaitLock,
		},
	}
}

// exits N PROG [ARGS...] runs PROG and checks that it exits with status N.
// Its stdout and stderr can be checked afterwards as with exec.
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits N prog [args...]")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("%s: %v", args[1], err)
	}
	if got != want {
		ts.Fatalf("%s exited with status %d, want %d", args[1], got, want)
	}
}

// capture VAR sets $VAR to the last command's stdout, trimmed.
func cmdCapture(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: capture VAR")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile("stdout")))
}

// waitfile PATH waits up to 30 seconds for PATH to exist.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitfile path")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if fi, err := os.Lstat(ts.MkAbs(args[0])); err == nil && fi.Size() > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("%s did not appear", args[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitlock ID live|stale|none waits up to 30 seconds for session ID's lock
// to be in that state, as 'ckpt show --json' sees it, on any backend.
func cmdWaitLock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: waitlock ID live|stale|none")
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		state := "none"
		if ts.Exec("ckpt", "show", args[0], "--json") == nil {
			var s struct{ Lock *struct{ State string } }
			if json.Unmarshal([]byte(ts.ReadFile("stdout")), &s) == nil && s.Lock != nil {
				state = s.Lock.State
			}
		}
		if state == args[1] {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("session %s's lock is %s, not %s, after 30s", args[0], state, args[1])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killsave ID runs 'ckpt save ID -', feeds it part of a payload, and kills
// it with SIGKILL once its session.next exists: a writer that crashed
// mid-save.
func cmdKillSave(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: killsave ID")
	}
	path, err := exec.LookPath("ckpt")
	ts.Check(err)
	c := exec.Command(path, "save", args[0], "-")
	c.Dir = ts.MkAbs(".")
	for _, kv := range []string{"HOME", "XDG_CACHE_HOME", "CKPT_REPOSITORY", "CKPT_S3_LEASE", "PATH",
		"AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_ENDPOINT_URL_S3"} {
		c.Env = append(c.Env, kv+"="+ts.Getenv(kv))
	}
	stdin, err := c.StdinPipe()
	ts.Check(err)
	ts.Check(c.Start())
	_, err = io.WriteString(stdin, strings.Repeat("half-written state\n", 1000))
	ts.Check(err)
	cmdWaitLock(ts, false, []string{args[0], "live"})
	ts.Check(c.Process.Signal(syscall.SIGKILL))
	if err := c.Wait(); err == nil {
		ts.Fatalf("ckpt save finished before it was killed")
	}
	stdin.Close()
}

// damage flip|truncate|garbage|delete ID manifest|payload [N] damages
// session ID's current manifest (or that of kept generation N) or the
// payload object it names, on any backend,
// through the backend's own primitives: flip one bit in the middle, cut the
// last 10 bytes off, replace it with a line of garbage, or delete it.
func cmdDamage(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 3 || len(args) > 4 || (args[2] != "manifest" && args[2] != "payload") {
		ts.Fatalf("usage: damage flip|truncate|garbage|delete ID manifest|payload [GENERATION]")
	}
	ctx := context.Background()
	env := ts.Getenv
	if ts.Getenv("CKPT_REPOSITORY") == "" {
		env = func(k string) string {
			if k == "CKPT_REPOSITORY" {
				return ts.Getenv("REPO")
			}
			return ts.Getenv(k)
		}
	}
	s, err := openSession(ctx, env, args[1])
	ts.Check(err)
	b := s.Backend()
	name := storage.CheckpointFile
	if len(args) == 4 {
		name += "." + args[3]
	}
	if args[2] == "payload" {
		raw, _, err := b.ReadHead(ctx, name, 1<<20)
		ts.Check(err)
		h, err := checkpoint.DecodeManifest(raw)
		ts.Check(err)
		if h.Payload == nil {
			ts.Fatalf("session %s has no payload object", args[1])
		}
		name = h.Payload.Object
	}
	data, _, err := b.ReadHead(ctx, name, 1<<30)
	ts.Check(err)
	switch args[0] {
	case "flip":
		data[len(data)/2] ^= 0x10
	case "truncate":
		data = data[:len(data)-10]
	case "garbage":
		data = []byte("garbage\n")
	case "delete":
		ts.Check(b.Delete(ctx, name))
		return
	default:
		ts.Fatalf("unknown damage %q", args[0])
	}
	ts.Check(b.Put(ctx, name, data))
}

// perm MODE PATH checks PATH's permission bits, in octal.
func cmdPerm(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: perm mode path")
	}
	want, err := strconv.ParseUint(args[0], 8, 32)
	ts.Check(err)
	fi, err := os.Lstat(ts.MkAbs(args[1]))
	ts.Check(err)
	if got := fi.Mode().Perm(); got != os.FileMode(want) {
		ts.Fatalf("%s has mode %#o, want %#o", args[1], got, want)
	}
}

// backdate PATH sets PATH's modification time an hour back.
func cmdBackdate(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: backdate path")
	}
	old := time.Now().Add(-time.Hour)
	ts.Check(os.Chtimes(ts.MkAbs(args[0]), old, old))
}

// seedv1 copies the format-1 repository kept in testdata/v1repo, written by
// ckpt before format 2, into the script's repository, on any backend.
func cmdSeedV1(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: seedv1")
	}
	src, err := filepath.Abs(filepath.Join("testdata", "v1repo"))
	ts.Check(err)
	des, err := os.ReadDir(src)
	ts.Check(err)
	ctx := context.Background()
	for _, de := range des {
		if !de.IsDir() {
			continue
		}
		if repo := ts.Getenv("REPO"); !s3store.IsURL(repo) {
			ts.Check(os.MkdirAll(filepath.Join(repo, de.Name()), 0o700))
		}
		s, err := openSession(ctx, ts.Getenv, de.Name())
		ts.Check(err)
		b := s.Backend()
		files, err := os.ReadDir(filepath.Join(src, de.Name()))
		ts.Check(err)
		for _, f := range files {
			if f.IsDir() {
				continue // logs: format 1 and 2 keep them alike
			}
			data, err := os.ReadFile(filepath.Join(src, de.Name(), f.Name()))
			ts.Check(err)
			ts.Check(b.Put(ctx, f.Name(), data))
		}
	}
}
