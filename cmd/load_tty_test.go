//go:build linux

package cmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns the two ends of a new pseudo-terminal, in raw mode so
// that what is written to pts reaches ptmx byte for byte.
func openPTY(t *testing.T) (ptmx, pts *os.File) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	// Through SyscallConn: Fd would make ptmx blocking, deaf to read
	// deadlines.
	rc, err := ptmx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n uint32
	if cerr := rc.Control(func(fd uintptr) {
		if err = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); err == nil {
			n, err = unix.IoctlGetUint32(int(fd), unix.TIOCGPTN)
		}
	}); cerr != nil || err != nil {
		t.Skipf("unlock pseudo-terminal: %v %v", cerr, err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	tio, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON
	if err := unix.IoctlSetTermios(int(pts.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return ptmx, pts
}

// onTerminal runs ckpt with the terminal pts as its stdout and returns
// its exit status, its stderr and what the terminal showed.
func onTerminal(t *testing.T, ptmx, pts *os.File, dir string, args ...string) (code int, stderr string, shown []byte) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, stderr = ckptMain(dir, nil, pts, args...)
	}()
	buf := make([]byte, 64<<10)
	for {
		finished := false
		select {
		case <-done:
			finished = true
		default:
		}
		if err := ptmx.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		n, err := ptmx.Read(buf)
		shown = append(shown, buf[:n]...)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded) && finished:
			return code, stderr, shown
		case errors.Is(err, os.ErrDeadlineExceeded):
		case err != nil:
			t.Fatalf("read terminal: %v", err)
		}
	}
}

// ckptMain runs ckpt in a repository under dir and returns its exit status
// and stderr.
func ckptMain(dir string, in []byte, out *os.File, args ...string) (int, string) {
	env := map[string]string{
		"CKPT_REPOSITORY": filepath.Join(dir, "sessions"),
		"XDG_CACHE_HOME":  filepath.Join(dir, "cache"),
		"HOME":            dir,
	}
	var stdout, stderr bytes.Buffer
	stdio := IO{In: bytes.NewReader(in), Out: &stdout, Err: &stderr}
	if out != nil {
		stdio.Out = out
	}
	code := Main(args, stdio, func(k string) string { return env[k] })
	if out == nil {
		stderr.WriteString(stdout.String()) // the id or generation, for the caller
	}
	return code, stderr.String()
}

// 'ckpt load' does not write a binary payload onto a terminal unless -o -
// says to, as age does; text still goes to the terminal, and anything goes
// to a file or a pipe.
func TestLoadBinaryToTerminal(t *testing.T) {
	ptmx, pts := openPTY(t)
	if !isTerminal(pts) {
		t.Fatal("isTerminal does not see the pseudo-terminal")
	}
	dir := t.TempDir()
	notTTY, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer notTTY.Close()
	if isTerminal(notTTY) {
		t.Fatal("a regular file is taken for a terminal")
	}

	session := func(payload []byte) string {
		t.Helper()
		code, out := ckptMain(dir, nil, nil, "create", "--prefix", "tty")
		if code != 0 {
			t.Fatalf("create: %d %s", code, out)
		}
		id := strings.TrimSpace(out)
		if code, out := ckptMain(dir, payload, nil, "save", id, "-"); code != 0 {
			t.Fatalf("save: %d %s", code, out)
		}
		return id
	}
	binary := append([]byte("\x1b]0;pwned\a\x00\x01"), bytes.Repeat([]byte{0xff, 0xfe, 0x00}, 5000)...)
	text := []byte("{\"step\": 3, \"title\": \"夜間テスト\"}\n")
	textThenBinary := append(bytes.Repeat([]byte("line of text\n"), 1000), 0x00, 0x1b)
	bin, txt, late := session(binary), session(text), session(textThenBinary)

	code, stderr, shown := onTerminal(t, ptmx, pts, dir, "load", bin)
	if code != exitUsage {
		t.Errorf("load of a binary payload to a terminal exited %d, want 2; stderr:\n%s", code, stderr)
	}
	if want := "ckpt: refusing to write a binary payload to a terminal\nckpt: hint: redirect stdout to a file or a pipe, pass -o FILE, or pass -o - to write it to the terminal anyway\n"; stderr != want {
		t.Errorf("stderr = %q, want %q", stderr, want)
	}
	if len(shown) != 0 {
		t.Errorf("the terminal got %d bytes: %q", len(shown), shown[:min(len(shown), 40)])
	}

	code, stderr, shown = onTerminal(t, ptmx, pts, dir, "load", bin, "-o", "-")
	if code != 0 || !bytes.Equal(shown, binary) {
		t.Errorf("load -o - exited %d and wrote %d bytes to the terminal, want 0 and the %d of the payload; stderr:\n%s", code, len(shown), len(binary), stderr)
	}

	for id, payload := range map[string][]byte{txt: text, late: textThenBinary} {
		code, stderr, shown = onTerminal(t, ptmx, pts, dir, "load", id)
		if code != 0 || !bytes.Equal(shown, payload) {
			t.Errorf("load of a text payload exited %d and wrote %d bytes to the terminal, want 0 and %d; stderr:\n%s", code, len(shown), len(payload), stderr)
		}
	}

	if code, stderr = ckptMain(dir, nil, notTTY, "load", bin); code != 0 {
		t.Errorf("load of a binary payload to a file exited %d; stderr:\n%s", code, stderr)
	}
	if got, _ := os.ReadFile(notTTY.Name()); !bytes.Equal(got, binary) {
		t.Errorf("load to a file wrote %d bytes, want %d", len(got), len(binary))
	}
}
