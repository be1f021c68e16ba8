package checkpoint_test

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// pattern is the period of the deterministic payload used by the streaming
// test; its length is prime so that no buffer size lines up with it.
var pattern = randomBytes(65521, 42)

// patternAt fills p with the deterministic payload starting at offset off.
func patternAt(p []byte, off int64) {
	for len(p) > 0 {
		n := copy(p, pattern[off%int64(len(pattern)):])
		p, off = p[n:], off+int64(n)
	}
}

// patternReader yields the first n bytes of the deterministic payload
// without holding more than one period of it.
type patternReader struct{ off, n int64 }

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.n-r.off)]
	patternAt(p, r.off)
	r.off += int64(len(p))
	return len(p), nil
}

// headTailSink is an io.Discard that keeps the first Write, which NewV1Writer
// promises is the whole preamble and header, and the last TrailerSize bytes.
type headTailSink struct {
	head []byte
	tail []byte
	n    int64
}

func (s *headTailSink) Write(p []byte) (int, error) {
	if s.n == 0 {
		s.head = bytes.Clone(p)
	}
	s.n += int64(len(p))
	// Keep the tail in one array, so that the sink itself allocates nothing
	// in proportion to the payload.
	const k = int(checkpoint.TrailerSize)
	if s.tail == nil {
		s.tail = make([]byte, 0, 2*k)
	}
	s.tail = append(s.tail, p[max(0, len(p)-k):]...)
	s.tail = s.tail[:copy(s.tail, s.tail[max(0, len(s.tail)-k):])]
	return len(p), nil
}

// syntheticFile is an io.ReaderAt over head, payloadLen bytes of the
// deterministic payload, and tail, computed on demand.
type syntheticFile struct {
	head, tail []byte
	payloadLen int64
}

func (f *syntheticFile) size() int64 {
	return int64(len(f.head)) + f.payloadLen + int64(len(f.tail))
}

func (f *syntheticFile) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	for len(p) > 0 && off < f.size() {
		var n int
		switch h, pl := int64(len(f.head)), f.payloadLen; {
		case off < h:
			n = copy(p, f.head[off:])
		case off < h+pl:
			n = int(min(int64(len(p)), h+pl-off))
			patternAt(p[:n], off-h)
		default:
			n = copy(p, f.tail[off-h-pl:])
		}
		p, off, total = p[n:], off+int64(n), total+n
	}
	if len(p) > 0 {
		return total, io.EOF
	}
	return total, nil
}

// memWatch tracks heap growth from the moment it is created.
type memWatch struct {
	base      runtime.MemStats
	peakInUse uint64
}

func newMemWatch() *memWatch {
	runtime.GC()
	w := new(memWatch)
	runtime.ReadMemStats(&w.base)
	w.peakInUse = w.base.HeapInuse
	return w
}

// sample records the current heap in use and returns the bytes allocated so
// far.
func (w *memWatch) sample() (totalAlloc uint64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	w.peakInUse = max(w.peakInUse, m.HeapInuse)
	return m.TotalAlloc - w.base.TotalAlloc
}

func (w *memWatch) check(t *testing.T, phase string, budget uint64) {
	t.Helper()
	alloc := w.sample()
	grown := w.peakInUse - w.base.HeapInuse
	t.Logf("%s: allocated %d KiB, heap in use grew by at most %d KiB", phase, alloc>>10, grown>>10)
	if alloc > budget {
		t.Errorf("%s allocated %d bytes, more than the budget of %d", phase, alloc, budget)
	}
	if grown > budget {
		t.Errorf("%s grew the heap in use by %d bytes, more than the budget of %d", phase, grown, budget)
	}
}

// TestStreamConstantMemory writes, reads and verifies a 256 MiB payload and
// checks that none of it is held in memory.
func TestStreamConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 256 MiB three times")
	}
	const (
		size   = 256 << 20
		budget = 16 << 20
	)
	h := fullHeader()

	// Write into a sink that keeps only the head and the tail.
	mw := newMemWatch()
	sink := new(headTailSink)
	w, err := checkpoint.NewV1Writer(sink, h)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := io.Copy(w, &patternReader{n: size}); n != size || err != nil {
		t.Fatalf("copy into the V1Writer = %d, %v", n, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	mw.check(t, "writing", budget)
	file := &syntheticFile{head: sink.head, tail: sink.tail, payloadLen: size}
	if file.size() != sink.n {
		t.Fatalf("the V1Writer wrote %d bytes; header %d + payload %d + trailer %d = %d",
			sink.n, len(sink.head), size, len(sink.tail), file.size())
	}

	// Verify the file the sink saw.
	mw = newMemWatch()
	info, err := checkpoint.Verify(file, file.size())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if info.PayloadOffset != int64(len(sink.head)) || info.PayloadSize != size {
		t.Errorf("Verify: payload at [%d, +%d), want [%d, +%d)", info.PayloadOffset, info.PayloadSize, len(sink.head), size)
	}
	mw.check(t, "verifying", budget)

	// Stream it through a pipe: a writer goroutine encodes, the Reader
	// decodes and the test compares every byte with the pattern.
	mw = newMemWatch()
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		w, err := checkpoint.NewV1Writer(pw, h)
		if err == nil {
			_, err = io.Copy(w, &patternReader{n: size})
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
		werr <- err
	}()
	defer pr.Close() // unblock the writer if the test fails early

	r, err := checkpoint.NewReader(pr)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	if d := headerDiff(h, r.Header()); d != "" {
		t.Error(d)
	}
	buf := make([]byte, 100003)
	want := make([]byte, len(buf))
	var off int64
	for next := int64(0); ; {
		n, err := r.Read(buf)
		patternAt(want[:n], off)
		if !bytes.Equal(buf[:n], want[:n]) {
			t.Fatalf("payload differs from the pattern at byte %d", off+int64(firstDiff(buf[:n], want[:n])))
		}
		off += int64(n)
		if off >= next {
			mw.sample()
			next += 16 << 20
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", off, err)
		}
	}
	if off != size || r.Size() != size {
		t.Errorf("read %d bytes, Reader.Size() = %d, want %d", off, r.Size(), size)
	}
	if err := <-werr; err != nil {
		t.Errorf("writer: %v", err)
	}
	mw.check(t, "streaming through a pipe", budget)
}
