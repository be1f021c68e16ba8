package main

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// Settings of TestS3PausedWriter, from the environment.
const (
	// pausedRoundsEnv sets how many rounds run (default 40, 8 with -short).
	pausedRoundsEnv = "CKPT_PAUSED_ROUNDS"
	// pausedParallelEnv sets how many rounds run at once (default 6): a
	// round spends most of its time waiting for a lease to go stale.
	pausedParallelEnv = "CKPT_PAUSED_PARALLEL"
	// pausedSeedEnv fixes the seed of the payloads and pause delays.
	pausedSeedEnv = "CKPT_PAUSED_SEED"
)

// pausedPartSize is the part size of the S3 backend as the ckpt command
// configures it (s3store.DefaultPartSize): writer A's payload is a little
// larger, so that it goes up as a multipart upload of two parts.
const pausedPartSize = 8 << 20

// TestS3PausedWriter pauses an S3 writer at random moments and keeps it
// paused past its lease while another writer breaks the lease and saves,
// then lets it go on. Whatever either writer printed as a saved generation
// must be loadable afterwards with exactly that writer's payload; no kept
// generation may hold anything but a whole payload some writer sent; and a
// writer that failed must have said why (a lost or held lock, exit 4, or a
// conflict, exit 5).
//
// Per round, on a session of its own in a fresh prefix, with 1s leases:
// writer A runs 'ckpt save ID -' with a payload just over one upload part,
// fed through a pipe, and is stopped (SIGSTOP) at a random moment: in one
// round of three anywhere from its start to 30% past the time an unpaused
// save takes under the same load (before it takes the lease, mid-upload,
// after its commit), in the others in the last stretch before its commit
// (see pausedCalibration.stopAt). Writer B then saves its own
// payload with 'ckpt save --wait --break-stale' (even rounds) or with
// 'ckpt break-lock' and a plain save once the lock is stale (odd rounds),
// and must succeed; only then is A continued (SIGCONT), except in every
// fourth round, where A goes on as soon as its lease is broken, while B
// saves (with --wait).
func TestS3PausedWriter(t *testing.T) {
	bin, why := s3test.Find()
	if bin == "" {
		if os.Getenv("CKPT_REQUIRE_VERSITYGW") == "1" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	rounds := pausedSetting(t, pausedRoundsEnv, 40)
	if testing.Short() && os.Getenv(pausedRoundsEnv) == "" {
		rounds = 8
	}
	parallel := pausedSetting(t, pausedParallelEnv, 6)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(pausedSeedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", pausedSeedEnv, v, err)
		}
	}
	// The real program, built without the race detector: a round runs a
	// dozen ckpt processes, most of them moving megabytes.
	ckpt := ckptBinary(t)
	gw, err := s3test.Start(bin, t.TempDir(), "ckpt-paused")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Stop() })
	home, tmp := t.TempDir(), t.TempDir()
	env := append(gw.Env(home),
		"PATH="+os.Getenv("PATH"),
		"XDG_CACHE_HOME="+filepath.Join(home, "cache"),
		"TMPDIR="+tmp,
		"CKPT_S3_LEASE=1s",
		// A race-enabled ckpt would sleep a second before it exits.
		"GORACE="+cmp.Or(os.Getenv("GORACE"), "atexit_sleep_ms=10"),
	)
	rig := &pausedRig{t: t, ckpt: ckpt, gw: gw, env: env}

	// How long unpaused saves of A's size take here, as many at once as
	// the rounds run, sets the range of the pause delays.
	cal := rig.calibrate(seed, parallel)
	t.Logf("%d rounds, %d at once, seed %d; %d unpaused saves at once exit after %v, and print their generation %v after the pipe took their last byte (medians)",
		rounds, parallel, seed, parallel, cal.exited.Round(time.Millisecond), cal.tail.Round(time.Millisecond))

	results := make([]*pausedRound, rounds)
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range rounds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := &pausedRound{n: i, seed: seed}
			r.nearCommit, r.stopAt = cal.stopAt(rand.New(rand.NewPCG(seed, uint64(i))), i)
			rig.round(r)
			results[i] = r
		}()
	}
	wg.Wait()
	rig.summarize(results, time.Since(began))
}

// pausedCalibration is how long unpaused saves of A's size take, as many
// at once as the rounds run: from their start until they exit, and from
// the moment the pipe took the last of their input (the upload's last part
// is being sent, then the upload completed, then the commit made) until
// they print their generation, just after their commit.
type pausedCalibration struct{ exited, tail time.Duration }

// calibrate runs n unpaused saves of A's size at once, each on a session
// of its own, and returns their median durations.
func (rig *pausedRig) calibrate(seed uint64, n int) pausedCalibration {
	t := rig.t
	var tail, exited []time.Duration
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range n {
		repo, id, err := rig.newSession(fmt.Sprintf("paused-%d-calibrate-%d", seed%100000, i))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			p, err := rig.start(repo, pausedPayload(seed, -1-i, "A", pausedPartSize+1<<19), "save", id, "-")
			if err != nil {
				t.Error(err)
				return
			}
			if code, _ := p.wait(time.Minute); code != 0 {
				t.Errorf("calibration save: exit %d: %s", code, p.stderr.String())
				return
			}
			mu.Lock()
			defer mu.Unlock()
			<-p.fedc
			tail = append(tail, p.firstOut.Sub(p.fed))
			exited = append(exited, p.end.Sub(p.start))
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	slices.Sort(tail)
	slices.Sort(exited)
	return pausedCalibration{tail: tail[len(tail)/2], exited: exited[len(exited)/2]}
}

// stopAt returns when writer A of round n is stopped: in two rounds of
// three in the last stretch before its commit, from when the pipe took the
// last of its input to the end of the tail the calibration measured (the
// commit comes a request before it); in every third round at any moment
// from its start to 30% past the time an unpaused save takes.
func (c pausedCalibration) stopAt(rnd *rand.Rand, n int) (nearCommit bool, after func(*proc) time.Time) {
	if n%3 != 0 {
		d := time.Duration(rnd.Int64N(int64(c.tail) + 1))
		return true, func(p *proc) time.Time {
			select {
			case <-p.fedc:
				return p.fed.Add(d)
			case <-p.done:
				return time.Now()
			}
		}
	}
	d := time.Duration(rnd.Int64N(int64(c.exited*13/10) + 1))
	return false, func(p *proc) time.Time { return p.start.Add(d) }
}

// pausedSetting returns the positive integer in environment variable name,
// or def.
func pausedSetting(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// pausedPayload returns the payload of writer who in round n: size bytes,
// random but for a first line that names them, so that no two payloads of
// the test are alike and a mix of two is never either.
func pausedPayload(seed uint64, n int, who string, size int) []byte {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(n))
	copy(key[16:], who)
	p := make([]byte, size)
	_, _ = rand.NewChaCha8(key).Read(p)
	copy(p, fmt.Sprintf("round %d writer %s\n", n, who))
	return p
}

// pausedRig runs ckpt processes against the test's gateway.
type pausedRig struct {
	t    *testing.T
	ckpt string
	gw   *s3test.Gateway
	env  []string
}

// proc is a ckpt process in a process group of its own, so that it can be
// stopped, continued and killed as a whole.
type proc struct {
	c              *exec.Cmd
	stdout, stderr bytes.Buffer
	done           chan struct{}
	err            error
	start, end     time.Time
	firstOut       time.Time // when it first wrote to stdout
	fed            time.Time // when all of stdin was written to the pipe
	fedc           chan struct{}
}

// stampWriter is a process's stdout: it notes when the first byte came.
type stampWriter struct{ p *proc }

func (w stampWriter) Write(b []byte) (int, error) {
	if w.p.firstOut.IsZero() {
		w.p.firstOut = time.Now()
	}
	return w.p.stdout.Write(b)
}

// start runs ckpt with args on repository repo, stdin fed from a pipe. The
// test's cleanup continues and kills it if it is still running.
func (rig *pausedRig) start(repo string, stdin []byte, args ...string) (*proc, error) {
	p := &proc{done: make(chan struct{}), fedc: make(chan struct{})}
	p.c = exec.Command(rig.ckpt, append([]string{"--repo", repo}, args...)...)
	p.c.Env = rig.env
	// Through a pipe: ckpt cannot tell the size.
	in, err := p.c.StdinPipe()
	if err != nil {
		return nil, err
	}
	// exec copies stdout in one goroutine, and Wait waits for it.
	p.c.Stdout, p.c.Stderr = stampWriter{p}, &p.stderr
	p.c.SysProcAttr = groupProcAttr()
	p.start = time.Now()
	if err := p.c.Start(); err != nil {
		return nil, fmt.Errorf("start ckpt %v: %w", args, err)
	}
	go func() {
		// Once the last write returns, ckpt has read all but what the
		// pipe buffers. A write fails if ckpt exits first.
		_, _ = in.Write(stdin)
		p.fed = time.Now()
		in.Close()
		close(p.fedc)
	}()
	go func() {
		p.err = p.c.Wait()
		p.end = time.Now()
		close(p.done)
	}()
	rig.t.Cleanup(func() {
		if !p.exited() {
			p.signal(syscall.SIGCONT)
			p.signal(syscall.SIGKILL)
			<-p.done
		}
	})
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to p's process group unless p has exited.
func (p *proc) signal(sig syscall.Signal) {
	if !p.exited() {
		_ = syscall.Kill(-p.c.Process.Pid, sig)
	}
}

// wait waits up to d for p to exit, and kills it if it does not.
func (p *proc) wait(d time.Duration) (exitCode int, timedOut bool) {
	select {
	case <-p.done:
	case <-time.After(d):
		p.signal(syscall.SIGCONT)
		p.signal(syscall.SIGKILL)
		<-p.done
		timedOut = true
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0, timedOut
	case errors.As(p.err, &ee):
		return ee.ExitCode(), timedOut // -1 if killed by a signal
	}
	return -1, timedOut
}

// run runs ckpt to its end and returns its stdout, stderr and exit status.
func (rig *pausedRig) run(repo string, stdin []byte, args ...string) ([]byte, string, int) {
	out, errOut, code, _ := rig.runPid(repo, stdin, args...)
	return out, errOut, code
}

// runPid is run that also returns the process id.
func (rig *pausedRig) runPid(repo string, stdin []byte, args ...string) ([]byte, string, int, int) {
	p, err := rig.start(repo, stdin, args...)
	if err != nil {
		return nil, err.Error(), -1, 0
	}
	code, timedOut := p.wait(2 * time.Minute)
	if timedOut {
		return nil, "timed out after 2 minutes; " + p.stderr.String(), -1, p.c.Process.Pid
	}
	return p.stdout.Bytes(), p.stderr.String(), code, p.c.Process.Pid
}

// newSession creates a session in a fresh prefix and returns the repository
// and the session's id.
func (rig *pausedRig) newSession(prefix string) (repo, id string, err error) {
	repo = rig.gw.URL(prefix)
	out, errOut, code := rig.run(repo, nil, "create", "--prefix", "paused")
	if code != 0 {
		return "", "", fmt.Errorf("create in %s: exit %d: %s", repo, code, errOut)
	}
	return repo, strings.TrimSpace(string(out)), nil
}

// pausedRound is what one round did and found.
type pausedRound struct {
	n     int
	seed  uint64
	delay time.Duration // from A's start to its SIGSTOP
	// nearCommit is set when the stop aims at the moments just before A's
	// commit; stopAt says when to stop A.
	nearCommit bool
	stopAt     func(*proc) time.Time

	aDoneEarly bool // A had exited before it was to be stopped
	breakLock  bool // B used 'ckpt break-lock' rather than --break-stale
	early      bool // A was continued after the break, before B saved
	broke      bool // B broke a stale lease (A's)
	stopped    time.Duration
	writers    [2]*pausedWriter
	problems   []string
	events     []string // what happened, for the report of a failed round
	duration   time.Duration
}

// pausedWriter is one writer of a round, as it ended.
type pausedWriter struct {
	name     string
	payload  []byte
	sum      [32]byte
	code     int
	stdout   string
	stderr   string
	gen      uint64 // what it printed, when it exited 0
	pid      int
	duration time.Duration
}

func (r *pausedRound) eventf(format string, args ...any) {
	r.events = append(r.events, fmt.Sprintf(format, args...))
}

func (r *pausedRound) problemf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// round runs round r: seed, A paused, B breaks and saves, A continued,
// then checks what the session holds.
func (rig *pausedRig) round(r *pausedRound) {
	began := time.Now()
	defer func() { r.duration = time.Since(began) }()
	repo, id, err := rig.newSession(fmt.Sprintf("paused-%d-%d", r.seed%100000, r.n))
	if err != nil {
		r.problemf("%v", err)
		return
	}
	r.breakLock = r.n%2 == 1
	// In every fourth round A goes on as soon as its lease is broken,
	// while B saves.
	r.early = r.n%4 == 3
	rnd := rand.New(rand.NewPCG(r.seed, uint64(r.n)<<32|1))

	seed := &pausedWriter{name: "seed", payload: pausedPayload(r.seed, r.n, "seed", 4<<10)}
	// A's payload goes up in two parts; B's, which only has to differ, in
	// one request.
	a := &pausedWriter{name: "A", payload: pausedPayload(r.seed, r.n, "A", pausedPartSize+1+rnd.IntN(1<<20))}
	b := &pausedWriter{name: "B", payload: pausedPayload(r.seed, r.n, "B", 64<<10+rnd.IntN(64<<10))}
	r.writers = [2]*pausedWriter{a, b}
	for _, w := range []*pausedWriter{seed, a, b} {
		w.sum = sha256.Sum256(w.payload)
	}
	out, errOut, code := rig.run(repo, seed.payload, "save", id, "-")
	if code != 0 {
		r.problemf("seed save: exit %d: %s", code, errOut)
		return
	}
	seed.code, seed.gen = 0, parseGen(out)

	// A starts, and is stopped when r.stopAt says.
	pa, err := rig.start(repo, a.payload, "save", id, "-")
	if err != nil {
		r.problemf("%v", err)
		return
	}
	time.Sleep(time.Until(r.stopAt(pa)))
	r.aDoneEarly = pa.exited()
	pa.signal(syscall.SIGSTOP)
	stoppedAt := time.Now()
	r.delay = stoppedAt.Sub(pa.start)
	fed := "not all of its input read yet"
	select {
	case <-pa.fedc:
		fed = fmt.Sprintf("%v after the pipe took its last byte", stoppedAt.Sub(pa.fed).Round(time.Millisecond))
	default:
	}
	r.eventf("A (pid %d) started; stopped after %v, %s (exited already: %v)", pa.c.Process.Pid, r.delay.Round(time.Millisecond), fed, r.aDoneEarly)

	// B breaks A's lease once it is stale, and saves.
	bStart := time.Now()
	continued := false
	cont := func() {
		if !continued {
			continued = true
			r.stopped = time.Since(stoppedAt)
			pa.signal(syscall.SIGCONT)
		}
	}
	if r.breakLock {
		var afterBreak func()
		if r.early {
			afterBreak = cont
		}
		rig.breakAndSave(r, repo, id, b, afterBreak)
	} else {
		out, errOut, code, pid := rig.runPid(repo, b.payload, "save", id, "-", "--wait", "60s", "--break-stale")
		b.code, b.stdout, b.stderr, b.pid = code, string(out), errOut, pid
		r.broke = strings.Contains(errOut, "broke the stale lock")
	}
	b.duration = time.Since(bStart)
	how := "save --wait --break-stale"
	switch {
	case r.early:
		how = "break-lock, A continued, save --wait"
	case r.breakLock:
		how = "break-lock, then save"
	}
	r.eventf("B (pid %d, %s) exited %d after %v, broke a lease: %v; stdout %q stderr %q",
		b.pid, how,
		b.code, b.duration.Round(time.Millisecond), r.broke, b.stdout, b.stderr)
	if b.code == 0 {
		b.gen = parseGen([]byte(b.stdout))
	} else {
		r.problemf("B, which breaks the stale lease and saves, failed: exit %d: %s", b.code, b.stderr)
	}

	// A goes on.
	cont()
	code, timedOut := pa.wait(time.Minute)
	a.code, a.stdout, a.stderr = code, pa.stdout.String(), pa.stderr.String()
	a.duration = pa.end.Sub(pa.start)
	if timedOut {
		r.problemf("A did not finish within a minute of SIGCONT; killed")
	}
	if code == 0 {
		a.gen = parseGen([]byte(a.stdout))
	}
	r.eventf("A continued after %v stopped; exited %d, %v after its start; stdout %q stderr %q",
		r.stopped.Round(time.Millisecond), a.code, a.duration.Round(time.Millisecond), a.stdout, a.stderr)

	rig.check(r, repo, id, seed)
	if len(r.problems) > 0 {
		r.eventf("objects: %s", rig.objects(repo, id))
	}
}

// objects lists the objects of session id as the gateway stores them, for
// the report of a failed round.
func (rig *pausedRig) objects(repo, id string) string {
	dir := filepath.Join(rig.gw.Dir, strings.TrimPrefix(repo, "s3://"), id)
	des, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, de := range des {
		if fi, err := de.Info(); err == nil {
			out = append(out, fmt.Sprintf("%s (%d bytes, %s)", de.Name(), fi.Size(), fi.ModTime().Format("15:04:05.000")))
		}
	}
	return strings.Join(out, ", ")
}

// breakAndSave is B of the odd rounds: it waits until the lock is stale or
// gone, breaks a stale one with 'ckpt break-lock', calls afterBreak if it is
// set, and saves: without waiting, or with --wait if afterBreak let A go on;
// a save that finds the lock taken again starts over.
func (rig *pausedRig) breakAndSave(r *pausedRound, repo, id string, b *pausedWriter, afterBreak func()) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		switch state := rig.lockState(repo, id); state {
		case "live":
			time.Sleep(200 * time.Millisecond)
			continue
		case "stale":
			_, errOut, code := rig.run(repo, nil, "break-lock", id)
			if code != 0 {
				r.problemf("break-lock of a stale lock: exit %d: %s", code, errOut)
				return
			}
			r.broke = true
		}
		args := []string{"save", id, "-"}
		if afterBreak != nil {
			afterBreak()
			afterBreak = nil
			args = append(args, "--wait", "60s")
		}
		out, errOut, code, pid := rig.runPid(repo, b.payload, args...)
		b.code, b.stdout, b.stderr, b.pid = code, string(out), errOut, pid
		if code != 4 {
			return
		}
		r.eventf("B's save found the lock taken: %s", strings.TrimSpace(errOut))
	}
}

// lockState returns the session's lock as 'ckpt show --json' sees it:
// none, live or stale.
func (rig *pausedRig) lockState(repo, id string) string {
	out, errOut, code := rig.run(repo, nil, "show", id, "--json")
	if code != 0 {
		return "unknown: " + errOut
	}
	var s struct{ Lock *struct{ State string } }
	if err := json.Unmarshal(out, &s); err != nil {
		return "unknown: " + err.Error()
	}
	if s.Lock == nil {
		return "none"
	}
	return s.Lock.State
}

func parseGen(out []byte) uint64 {
	g, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 64)
	if err != nil {
		return 0
	}
	return g
}

// check loads the session after a round and compares it with what the
// writers were told.
func (rig *pausedRig) check(r *pausedRound, repo, id string, seed *pausedWriter) {
	writers := append([]*pausedWriter{seed}, r.writers[:]...)
	known := map[[32]byte]*pausedWriter{}
	for _, w := range writers {
		known[w.sum] = w
	}
	// load loads a generation, or the current checkpoint, and says whose
	// payload it holds.
	load := func(args ...string) (string, error) {
		out, errOut, code := rig.run(repo, nil, append([]string{"load", id}, args...)...)
		if code != 0 {
			return "", fmt.Errorf("exit %d: %s", code, strings.TrimSpace(errOut))
		}
		if w := known[sha256.Sum256(out)]; w != nil {
			return w.name, nil
		}
		return fmt.Sprintf("unknown: %d bytes starting %q", len(out), firstLine(out)), nil
	}

	// Every writer that failed said why; every one that exited 0 printed
	// a generation of its own.
	acked := map[uint64]*pausedWriter{}
	var ackedAll []*pausedWriter
	var newest uint64
	for _, w := range writers {
		switch {
		case w.code == 0 && w.gen == 0:
			r.problemf("%s exited 0 but printed no generation: %q", w.name, w.stdout)
		case w.code == 0:
			if other := acked[w.gen]; other != nil {
				r.problemf("%s and %s were both told they saved generation %d", other.name, w.name, w.gen)
			}
			acked[w.gen] = w
			ackedAll = append(ackedAll, w)
			newest = max(newest, w.gen)
		case w.code == 4:
			if !strings.Contains(w.stderr, "lock") && !strings.Contains(w.stderr, "lease") {
				r.problemf("%s exited 4 without naming a lock or lease: %q", w.name, w.stderr)
			}
		case w.code == 5:
		default:
			r.problemf("%s failed with exit %d, not 4 (lock lost or held) or 5 (conflict): %q", w.name, w.code, w.stderr)
		}
		if w.code != 0 && !strings.HasPrefix(w.stderr, "ckpt: ") {
			r.problemf("%s failed with exit %d without a 'ckpt: ' message: %q", w.name, w.code, w.stderr)
		}
	}

	// Every kept generation is intact and holds one writer's whole
	// payload: if some writer was told it saved it, that writer's;
	// otherwise that of a writer that said its save landed.
	out, errOut, code := rig.run(repo, nil, "history", id, "--json")
	var hist []struct {
		Generation uint64
		Current    bool
		Intact     bool
		Error      string
	}
	if code != 0 {
		r.problemf("history: exit %d: %s", code, errOut)
	} else if err := json.Unmarshal(out, &hist); err != nil {
		r.problemf("history --json: %v: %s", err, out)
	}
	holds := map[uint64]string{}
	var gens []string
	for _, h := range hist {
		g := h.Generation
		gens = append(gens, strconv.FormatUint(g, 10))
		if !h.Intact {
			r.problemf("generation %d is not intact: %s", g, h.Error)
		}
		if h.Current && g != newest {
			r.problemf("generation %d is current, but the newest acknowledged save is %d", g, newest)
		}
		name, err := load("--generation", strconv.FormatUint(g, 10))
		if err != nil {
			r.problemf("generation %d is listed but does not load: %v", g, err)
			continue
		}
		holds[g] = name
		switch {
		case strings.HasPrefix(name, "unknown"):
			r.problemf("TORN: generation %d holds no writer's whole payload: %s", g, name)
		case acked[g] == nil:
			for _, w := range writers {
				if w.name == name && (!strings.Contains(w.stderr, "saved") || strings.Contains(w.stderr, "nothing was saved")) {
					r.problemf("generation %d holds %s's payload, but %s failed with exit %d: %q", g, name, name, w.code, w.stderr)
				}
			}
		}
	}
	r.eventf("history: generations %s", strings.Join(gens, " "))

	// With --keep 3, a seed and two writers, every acknowledged save is
	// still kept, with its writer's payload.
	for _, w := range ackedAll {
		name, ok := holds[w.gen]
		if !ok {
			_, err := load("--generation", strconv.FormatUint(w.gen, 10))
			r.problemf("LOST: %s's acknowledged generation %d is not in the history (%s); loading it: %v", w.name, w.gen, strings.Join(gens, " "), err)
			continue
		}
		if name != w.name {
			r.problemf("LOST: %s was told it saved generation %d, which holds %s's payload", w.name, w.gen, name)
		}
	}

	// The current checkpoint is the newest acknowledged save.
	switch name, err := load(); {
	case err != nil:
		r.problemf("load of the current checkpoint: %v", err)
	case acked[newest] != nil && name != acked[newest].name:
		r.problemf("LOST: the current checkpoint holds %s's payload, not that of %s, whose generation %d is the newest acknowledged", name, acked[newest].name, newest)
	}

	// Nobody is left holding the lock.
	if state := rig.lockState(repo, id); state != "none" {
		out, _, _ := rig.run(repo, nil, "show", id, "--json")
		var s struct{ Lock json.RawMessage }
		_ = json.Unmarshal(out, &s)
		r.problemf("after the round the session's lock is %s: %s", state, s.Lock)
	}
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b[:min(len(b), 80)], []byte("\n"))
	return string(line)
}

// summarize reports each failed round in full, and what the rounds did.
func (rig *pausedRig) summarize(results []*pausedRound, took time.Duration) {
	t := rig.t
	outcomes := map[string]int{}
	var lost, failed, broke, early, delays, stopped, roundMS int
	var order []string
	for _, r := range results {
		a, b := r.writers[0], r.writers[1]
		var what string
		switch {
		case a == nil:
			what = "did not run"
		case a.code == 0 && b.code == 0 && a.gen == b.gen:
			what = fmt.Sprintf("A and B both told they saved generation %d", a.gen)
		case a.code == 0 && b.code == 0 && a.gen < b.gen:
			what = "A saved, then B over it"
		case a.code == 0 && b.code == 0:
			what = "B saved, then A over it"
		case a.code == 0:
			what = "A saved, B failed"
		default:
			what = fmt.Sprintf("A failed with exit %d", a.code)
		}
		if r.broke {
			what += " (B broke A's lease)"
			broke++
		}
		if r.nearCommit {
			what += ", stopped near its commit"
		}
		if r.early {
			what += ", continued while B saved"
		}
		if r.aDoneEarly {
			early++
		}
		if _, ok := outcomes[what]; !ok {
			order = append(order, what)
		}
		outcomes[what]++
		delays += int(r.delay.Milliseconds())
		stopped += int(r.stopped.Milliseconds())
		roundMS += int(r.duration.Milliseconds())
		isLost := false
		for _, p := range r.problems {
			isLost = isLost || strings.HasPrefix(p, "LOST")
		}
		if isLost {
			lost++
		}
		if len(r.problems) > 0 {
			failed++
			t.Errorf("round %d (A stopped %v after its start): %s\n\twhat happened:\n\t\t%s",
				r.n, r.delay.Round(time.Millisecond), strings.Join(r.problems, "\n\t"), strings.Join(r.events, "\n\t\t"))
		}
	}
	slices.Sort(order)
	var lines []string
	for _, o := range order {
		lines = append(lines, fmt.Sprintf("%3d × %s", outcomes[o], o))
	}
	n := len(results)
	t.Logf("%d rounds in %v: %d lost an acknowledged save, %d failed a check; B broke A's lease in %d; A had finished before its pause in %d; mean pause delay %dms, mean time stopped %dms, mean round %dms\n\t%s",
		n, took.Round(time.Millisecond), lost, failed, broke, early, delays/n, stopped/n, roundMS/n, strings.Join(lines, "\n\t"))
}
