package checkpoint_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// oddChunks are the sizes the round-trip test cycles through when it writes
// a payload, so that no write lines up with a buffer boundary.
var oddChunks = []int{1, 3, 17, 509, 4093, 65521, 100003, 7}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestRoundTrip writes format-1 files with payloads of several sizes and
// reads them back, through underlying readers that return data in different
// ways.
func TestRoundTrip(t *testing.T) {
	now := time.Now() // carries a monotonic reading and time.Local
	headers := map[string]func() *checkpoint.Header{
		"zero": func() *checkpoint.Header { return &checkpoint.Header{} },
		"full": fullHeader,
		"now": func() *checkpoint.Header {
			h := fullHeader()
			h.Saved, h.Created, h.Owner.Started = now, now.Add(-time.Hour), now.Add(-time.Minute)
			return h
		},
	}
	readers := map[string]func(io.Reader) io.Reader{
		"direct":   func(r io.Reader) io.Reader { return r },
		"half":     iotest.HalfReader,
		"data+eof": iotest.DataErrReader,
		"one byte": iotest.OneByteReader,
	}
	for _, size := range []int{0, 1, 4096, 3<<20 + 12345} {
		payload := randomBytes(size, uint64(size))
		for hname, newHeader := range headers {
			for rname, wrap := range readers {
				if rname == "one byte" && size > 4096 {
					continue // a byte at a time is slow and adds nothing at this size
				}
				t.Run(fmt.Sprintf("%d bytes/%s header/%s reader", size, hname, rname), func(t *testing.T) {
					testRoundTrip(t, newHeader(), payload, wrap)
				})
			}
		}
	}
}

func testRoundTrip(t *testing.T, h *checkpoint.Header, payload []byte, wrap func(io.Reader) io.Reader) {
	var buf bytes.Buffer
	w, err := checkpoint.NewV1Writer(&buf, h)
	if err != nil {
		t.Fatalf("NewV1Writer: %v", err)
	}
	for p, i := payload, 0; len(p) > 0; i++ {
		n := min(oddChunks[i%len(oddChunks)], len(p))
		if m, err := w.Write(p[:n]); m != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
		p = p[n:]
	}
	if w.Size() != int64(len(payload)) {
		t.Errorf("V1Writer.Size() = %d, want %d", w.Size(), len(payload))
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	file := buf.Bytes()

	// ReadHeader.
	hh, off, err := checkpoint.ReadHeader(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("ReadHeader: %v", err)
	}
	if d := headerDiff(h, hh); d != "" {
		t.Errorf("ReadHeader: %s", d)
	}
	if want := int64(len(file)) - int64(len(payload)) - checkpoint.TrailerSize; off != want {
		t.Errorf("ReadHeader offset = %d; file size %d - payload %d - TrailerSize %d = %d",
			off, len(file), len(payload), checkpoint.TrailerSize, want)
	}

	// Reader.
	r, err := checkpoint.NewReader(wrap(bytes.NewReader(file)))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	if d := headerDiff(h, r.Header()); d != "" {
		t.Errorf("Reader.Header: %s", d)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("payload read back differs at byte %d (got %d bytes, want %d)", firstDiff(got, payload), len(got), len(payload))
	}
	if r.Size() != int64(len(payload)) {
		t.Errorf("Reader.Size() = %d, want %d", r.Size(), len(payload))
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, io.EOF", n, err)
	}

	// Reads of odd sizes, down to a single byte.
	r, err = checkpoint.NewReader(wrap(bytes.NewReader(file)))
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	if got, err := readOddSizes(r); err != nil || !bytes.Equal(got, payload) {
		t.Errorf("reading in odd sizes: %v; payload differs at byte %d (got %d bytes, want %d)",
			err, firstDiff(got, payload), len(got), len(payload))
	}

	// Verify.
	info, err := checkpoint.Verify(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if d := headerDiff(h, info.Header); d != "" {
		t.Errorf("Verify: %s", d)
	}
	if info.PayloadOffset != off || info.PayloadSize != int64(len(payload)) {
		t.Errorf("Verify: payload at [%d, +%d), want [%d, +%d)", info.PayloadOffset, info.PayloadSize, off, len(payload))
	}
	if int64(len(file)) != info.PayloadOffset+info.PayloadSize+checkpoint.TrailerSize {
		t.Errorf("file size %d != PayloadOffset %d + PayloadSize %d + TrailerSize %d",
			len(file), info.PayloadOffset, info.PayloadSize, checkpoint.TrailerSize)
	}
	if sec := file[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]; !bytes.Equal(sec, payload) {
		t.Errorf("payload section of the file differs at byte %d", firstDiff(sec, payload))
	}
}

// readOddSizes reads r to the end with buffers whose sizes cycle through
// oddChunks.
func readOddSizes(r io.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, slices.Max(oddChunks))
	for i := 0; ; i++ {
		n, err := r.Read(buf[:oddChunks[i%len(oddChunks)]])
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 {
			return out, errors.New("Read returned 0, nil")
		}
	}
}

// TestReadLargeBuffer reads with buffers larger than the Reader's internal
// buffer, which Read must split rather than fail on.
func TestReadLargeBuffer(t *testing.T) {
	payload := randomBytes(3<<20+1, 1)
	file := encode(t, fullHeader(), payload)
	r, err := checkpoint.NewReader(bytes.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 1<<20+3)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if n == 0 {
			t.Fatal("Read returned 0, nil")
		}
	}
	if !bytes.Equal(got, payload) {
		t.Errorf("payload differs at byte %d (got %d bytes, want %d)", firstDiff(got, payload), len(got), len(payload))
	}
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReadHeaderReadsOnlyTheHeader checks that ReadHeader needs, and
// consumes, exactly the header section.
func TestReadHeaderReadsOnlyTheHeader(t *testing.T) {
	file := smallFile(t)
	cr := &countingReader{r: bytes.NewReader(file)}
	h, off, err := checkpoint.ReadHeader(cr)
	if err != nil {
		t.Fatal(err)
	}
	if d := headerDiff(fullHeader(), h); d != "" {
		t.Error(d)
	}
	if cr.n != off {
		t.Errorf("ReadHeader consumed %d bytes, reported offset %d", cr.n, off)
	}

	// Only the header section is needed, and a damaged payload or a missing
	// trailer does not matter to it.
	damaged := bytes.Clone(file)
	damaged[off] ^= 0xff
	for name, b := range map[string][]byte{
		"header section only": file[:off],
		"damaged payload":     damaged,
		"no trailer":          file[:int64(len(file))-checkpoint.TrailerSize],
	} {
		h, off2, err := checkpoint.ReadHeader(bytes.NewReader(b))
		if err != nil {
			t.Errorf("%s: ReadHeader: %v", name, err)
			continue
		}
		if off2 != off {
			t.Errorf("%s: offset %d, want %d", name, off2, off)
		}
		if d := headerDiff(fullHeader(), h); d != "" {
			t.Errorf("%s: %s", name, d)
		}
	}
	if _, err := checkpoint.Verify(bytes.NewReader(damaged), int64(len(damaged))); err == nil {
		t.Error("Verify accepted a damaged payload")
	}
}

// recordingWriter records each Write call and fails once failAfter bytes
// have been written.
type recordingWriter struct {
	writes    [][]byte
	failAfter int
	n         int
}

var errDiskFull = errors.New("disk full")

func (w *recordingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	if w.failAfter >= 0 && w.n+len(p) > w.failAfter {
		k := w.failAfter - w.n
		w.n += k
		return k, errDiskFull
	}
	w.n += len(p)
	return len(p), nil
}

// TestWriterHeaderInOneWrite checks NewV1Writer's promise that the preamble
// and header go out in a single Write call.
func TestWriterHeaderInOneWrite(t *testing.T) {
	rw := &recordingWriter{failAfter: -1}
	if _, err := checkpoint.NewV1Writer(rw, fullHeader()); err != nil {
		t.Fatal(err)
	}
	file := smallFile(t)
	_, off, _ := checkpoint.ReadHeader(bytes.NewReader(file))
	if len(rw.writes) != 1 || !bytes.Equal(rw.writes[0], file[:off]) {
		t.Errorf("NewV1Writer made %d Write calls; want one with the %d-byte preamble and header", len(rw.writes), off)
	}
}

// TestWriterErrors checks that a failing underlying writer stops the V1Writer
// for good, and that Close and Write after Close behave.
func TestWriterErrors(t *testing.T) {
	file := smallFile(t)
	_, off, _ := checkpoint.ReadHeader(bytes.NewReader(file))
	payload := []byte("hello, checkpoint\n")

	t.Run("header", func(t *testing.T) {
		_, err := checkpoint.NewV1Writer(&recordingWriter{failAfter: 10}, fullHeader())
		if !errors.Is(err, errDiskFull) {
			t.Errorf("NewV1Writer: error %v, want %v", err, errDiskFull)
		}
	})
	t.Run("payload", func(t *testing.T) {
		rw := &recordingWriter{failAfter: int(off) + 5}
		w, err := checkpoint.NewV1Writer(rw, fullHeader())
		if err != nil {
			t.Fatal(err)
		}
		if n, err := w.Write(payload); n != 5 || !errors.Is(err, errDiskFull) {
			t.Errorf("Write = %d, %v; want 5, %v", n, err, errDiskFull)
		}
		if w.Size() != 5 {
			t.Errorf("Size() = %d, want the 5 bytes that were written", w.Size())
		}
		calls := len(rw.writes)
		if n, err := w.Write(payload); n != 0 || !errors.Is(err, errDiskFull) {
			t.Errorf("Write after a failure = %d, %v; want 0, %v", n, err, errDiskFull)
		}
		if err := w.Close(); !errors.Is(err, errDiskFull) {
			t.Errorf("Close after a failure: %v, want %v", err, errDiskFull)
		}
		if len(rw.writes) != calls {
			t.Errorf("the V1Writer kept writing after the underlying writer failed")
		}
	})
	t.Run("trailer", func(t *testing.T) {
		rw := &recordingWriter{failAfter: len(file) - 1}
		w, err := checkpoint.NewV1Writer(rw, fullHeader())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(payload); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); !errors.Is(err, errDiskFull) {
			t.Errorf("Close: %v, want %v", err, errDiskFull)
		}
	})
	t.Run("after close", func(t *testing.T) {
		var buf bytes.Buffer
		w, err := checkpoint.NewV1Writer(&buf, fullHeader())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(payload); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		if n, err := w.Write([]byte("more")); n != 0 || err == nil {
			t.Errorf("Write after Close = %d, %v; want an error", n, err)
		}
		if !bytes.Equal(buf.Bytes(), file) {
			t.Error("Close twice or Write after Close changed the output")
		}
	})
}

// TestReaderErrors checks that I/O errors are passed on unchanged, and that
// errors stick.
func TestReaderErrors(t *testing.T) {
	file := smallFile(t)
	_, off, _ := checkpoint.ReadHeader(bytes.NewReader(file))
	errIO := errors.New("input/output error")

	// An I/O error is passed on as it is: it says nothing about the file.
	for _, n := range []int64{0, 5, off, off + 3, int64(len(file)) - 1} {
		r := io.MultiReader(bytes.NewReader(file[:n]), iotest.ErrReader(errIO))
		_, _, err := readStream(r)
		if !errors.Is(err, errIO) {
			t.Errorf("I/O error after %d bytes: got %v, want %v", n, err, errIO)
		}
		var ce *checkpoint.CorruptError
		if errors.As(err, &ce) {
			t.Errorf("I/O error after %d bytes reported as corruption", n)
		}
	}

	// Verify passes on a ReaderAt's error too.
	_, err := checkpoint.Verify(failingReaderAt{file, off + 2, errIO}, int64(len(file)))
	if !errors.Is(err, errIO) {
		t.Errorf("Verify with a failing ReaderAt: %v, want %v", err, errIO)
	}

	// Once the Reader has found corruption it keeps saying so.
	bad := bytes.Clone(file)
	bad[len(bad)-1] ^= 1
	r, err := checkpoint.NewReader(bytes.NewReader(bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := io.ReadAll(r)
	_, err2 := r.Read(make([]byte, 8))
	checkCorrupt(t, "first error", err1)
	if err2 != err1 {
		t.Errorf("Read after a corrupt error = %v, want the same error %v", err2, err1)
	}
	if n, err := r.Read(nil); n != 0 || err == nil {
		t.Errorf("Read(nil) after a corrupt error = %d, %v; want the error", n, err)
	}
}

type failingReaderAt struct {
	b     []byte
	after int64
	err   error
}

func (f failingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.after {
		return 0, f.err
	}
	return copy(p, f.b[off:]), nil
}
