package storage_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// crashKills is how many times TestCrashLoop kills its writer. make test runs
// the default; make crash-test runs at least 1,000.
var crashKills = flag.Int("crash.kills", 40, "number of SIGKILLs in TestCrashLoop")

// crashPayload returns the payload of save number seq: one to four MiB of
// bytes that only seq produces, starting with seq itself.
func crashPayload(seq uint64) []byte {
	size := 1<<20 + int(seq*7919%(3<<20))
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, seq)
	r := rand.New(rand.NewPCG(seq, 0x636b7074))
	for i := 8; i+8 <= size; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b
}

// TestCrashWriterChild is the writer TestCrashLoop kills: it saves
// crashPayload(seq) for seq = $CKPT_CRASH_START, +1, ... until it is killed,
// and prints "ack SEQ" after each save that returned success.
func TestCrashWriterChild(t *testing.T) {
	dir := os.Getenv("CKPT_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashLoop")
	}
	seq, err := strconv.ParseUint(os.Getenv("CKPT_CRASH_START"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	d, err := storage.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for ; ; seq++ {
		if _, err := d.Save(context.Background(), bytes.NewReader(crashPayload(seq))); err != nil {
			fmt.Fprintf(os.Stdout, "error %d %v\n", seq, err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stdout, "ack %d\n", seq)
	}
}

// TestCrashLoop kills a writer with SIGKILL at random moments, again and
// again. After each kill it breaks the stale lock, if any, and checks that
// the checkpoint is exactly one of the payloads written (never torn) and no
// older than the last save that reported success (never lost).
func TestCrashLoop(t *testing.T) {
	if os.Getenv("CKPT_CRASH_DIR") != "" {
		t.Skip("this is the child")
	}
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "crash")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	b, err := storage.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	d, err := storage.Init(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	var (
		next      uint64 = 1 // the first seq the next writer saves
		acked     int
		midSave   int
		committed int // saves that landed without being acknowledged
	)
	for kill := 0; kill < *crashKills; kill++ {
		c := exec.Command(os.Args[0], "-test.run=^TestCrashWriterChild$")
		c.Env = append(os.Environ(), "CKPT_CRASH_DIR="+dir, "CKPT_CRASH_START="+strconv.FormatUint(next, 10))
		out, err := c.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan []string)
		go func() {
			var lines []string
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				lines = append(lines, sc.Text())
			}
			done <- lines
		}()
		time.Sleep(time.Duration(5+rng.IntN(60)) * time.Millisecond)
		_ = c.Process.Kill()
		lines := <-done
		_ = c.Wait()

		lastAck := next - 1
		for _, l := range lines {
			var seq uint64
			if _, err := fmt.Sscanf(l, "ack %d", &seq); err != nil {
				t.Fatalf("kill %d: writer said %q", kill, l)
			}
			lastAck = seq
			acked++
		}
		if l, err := d.BreakLock(ctx, false); err != nil {
			t.Fatalf("kill %d: break-lock of a dead writer: %v", kill, err)
		} else if l != nil {
			midSave++
		}
		cp, err := d.Load(ctx)
		if err != nil {
			var ce *checkpoint.CorruptError
			if errors.As(err, &ce) {
				t.Fatalf("kill %d: TORN checkpoint: %v", kill, err)
			}
			if lastAck == 0 && errors.Is(err, storage.ErrNoCheckpoint) {
				continue // killed before its first save
			}
			t.Fatalf("kill %d: load: %v", kill, err)
		}
		got, err := io.ReadAll(cp)
		cp.Close()
		if err != nil {
			t.Fatal(err)
		}
		seq := binary.BigEndian.Uint64(got)
		switch {
		case seq < lastAck:
			t.Fatalf("kill %d: LOST acknowledged save: checkpoint is save %d, but save %d reported success", kill, seq, lastAck)
		case seq > lastAck+1:
			t.Fatalf("kill %d: checkpoint is save %d, which was never started (last ack %d)", kill, seq, lastAck)
		case !bytes.Equal(got, crashPayload(seq)):
			t.Fatalf("kill %d: TORN checkpoint: save %d's payload differs from what was written", kill, seq)
		}
		if seq == lastAck+1 {
			committed++
		}
		next = seq + 1
	}
	t.Logf("kills: %d, acknowledged saves: %d, kills mid-save (stale lock broken): %d, saves committed but killed before their ack: %d, torn checkpoints: 0, lost acknowledged saves: 0",
		*crashKills, acked, midSave, committed)
}
