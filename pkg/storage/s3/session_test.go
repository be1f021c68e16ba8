package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

func TestSaveLoadRoundTrip(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st, storage.WithTitle("nightly"), storage.WithFlags([]string{"incomplete"}, nil))

	_, err := s.Load(t.Context())
	if !errors.Is(err, storage.ErrNoCheckpoint) {
		t.Fatalf("Load of a new session: %v, want ErrNoCheckpoint", err)
	}
	stat, err := s.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if stat.Header == nil || stat.Header.Generation != 0 || stat.Header.Title != "nightly" || !stat.Header.HasFlag("incomplete") || stat.Lock != nil {
		t.Fatalf("Stat of a new session = %+v", stat)
	}

	saved := mustSave(t, s, "state 1", storage.WithCommand("test save"))
	if saved.Header.Generation != 1 || saved.Size != 7 {
		t.Errorf("Save = generation %d, size %d; want 1, 7", saved.Header.Generation, saved.Size)
	}
	wantLoad(t, s, 1, "state 1")
	cp, _ := mustLoad(t, s)
	if cp.Header.Title != "nightly" || !cp.Header.HasFlag("incomplete") || cp.Header.Owner == nil || cp.Header.Owner.Command != "test save" {
		t.Errorf("metadata did not carry over: %+v", cp.Header)
	}

	// The object is the same bytes a local session file holds.
	raw := getObject(t, s, CheckpointObject)
	info, err := checkpoint.Verify(bytes.NewReader(raw), int64(len(raw)))
	if err != nil || info.Header.Generation != 1 {
		t.Fatalf("the session object is not a checkpoint file: %v", err)
	}
	if got := string(raw[info.PayloadOffset : info.PayloadOffset+info.PayloadSize]); got != "state 1" {
		t.Errorf("payload in the object = %q", got)
	}

	if _, err := s.Save(t.Context(), strings.NewReader("")); !errors.Is(err, storage.ErrEmpty) {
		t.Errorf("Save of an empty payload: %v, want ErrEmpty", err)
	}
	mustSave(t, s, "", storage.AllowEmpty())
	wantLoad(t, s, 2, "")
	mustSave(t, s, "ignored", storage.KeepPayload(), storage.WithFlags(nil, []string{"incomplete"}), storage.WithFlags([]string{"done"}, nil))
	cp, got := mustLoad(t, s)
	if cp.Header.Generation != 3 || got != "" || !cp.Header.HasFlag("done") || cp.Header.HasFlag("incomplete") {
		t.Errorf("KeepPayload save = generation %d %q flags %v", cp.Header.Generation, got, cp.Header.Flags)
	}
	if names := objectNames(t, s); slices.Contains(names, LeaseObject) {
		t.Errorf("a save left its lease behind: %v", names)
	}
}

func TestCreateOpenList(t *testing.T) {
	st := newStore(t, testOptions())
	ctx := t.Context()
	if _, err := st.Open(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open of a missing session: %v, want ErrNotFound", err)
	}
	if _, err := st.Open(ctx, "../x"); !errors.Is(err, ErrInvalidID) {
		t.Errorf("Open(../x): %v, want ErrInvalidID", err)
	}
	if _, err := st.Create(ctx, "a-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, "a-1"); !errors.Is(err, ErrExist) {
		t.Errorf("Create of a taken id: %v, want ErrExist", err)
	}
	s, err := st.Open(ctx, "a-1")
	if err != nil {
		t.Fatal(err)
	}
	if s.ID() != "a-1" {
		t.Errorf("ID = %q", s.ID())
	}
	// Saving to a session that does not exist creates nothing.
	ghost := st.session("ghost")
	if _, err := ghost.Save(ctx, strings.NewReader("x")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Save to a missing session: %v, want ErrNotFound", err)
	}
	if _, err := st.Create(ctx, "b-2"); err != nil {
		t.Fatal(err)
	}
	ids, err := st.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []string{"a-1", "b-2"}) {
		t.Errorf("List = %v, want [a-1 b-2]", ids)
	}
	if !strings.HasPrefix(st.Root(), "s3://"+testBucket+"/") {
		t.Errorf("Root = %q", st.Root())
	}
}

func TestCreateRace(t *testing.T) {
	st := newStore(t, testOptions())
	const n = 8
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := st.Create(context.Background(), "same-id")
			errs <- err
		}()
	}
	won := 0
	for range n {
		switch err := <-errs; {
		case err == nil:
			won++
		case !errors.Is(err, ErrExist):
			t.Errorf("Create: %v, want nil or ErrExist", err)
		}
	}
	if won != 1 {
		t.Errorf("%d creates of one id succeeded, want 1", won)
	}
}

func TestListPaging(t *testing.T) {
	o := testOptions()
	o.ListPageSize = 3
	st := newStore(t, o)
	var want []string
	for i := range 10 {
		id := "p-" + string(rune('a'+i))
		if _, err := st.Create(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	ids, err := st.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("List with pages of 3 = %v, want %v", ids, want)
	}
}

func TestGenerationsAndConflict(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	for i := 1; i <= 5; i++ {
		mustSave(t, s, strings.Repeat("x", i))
	}
	gens, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []uint64
	for _, g := range gens {
		if g.Err != nil {
			t.Errorf("generation %d: %v", g.Generation, g.Err)
		}
		got = append(got, g.Generation)
	}
	if !slices.Equal(got, []uint64{5, 4, 3}) || !gens[0].Current {
		t.Errorf("History = %v, want [5 4 3] with 5 current", got)
	}
	cp, payload := mustLoad(t, s, storage.AtGeneration(4))
	if cp.Header.Generation != 4 || payload != "xxxx" {
		t.Errorf("Load(AtGeneration(4)) = %d %q", cp.Header.Generation, payload)
	}
	if _, err := s.Load(t.Context(), storage.AtGeneration(1)); !errors.Is(err, storage.ErrNoGeneration) {
		t.Errorf("Load of a dropped generation: %v, want ErrNoGeneration", err)
	}

	if _, err := s.Save(t.Context(), strings.NewReader("late"), storage.IfGeneration(4)); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("Save with a stale IfGeneration: %v, want ErrConflict", err)
	}
	mustSave(t, s, "on time", storage.IfGeneration(5))
	wantLoad(t, s, 6, "on time")

	mustSave(t, s, "no history", storage.Keep(1))
	gens, err = s.History(t.Context())
	if err != nil || len(gens) != 1 {
		t.Errorf("History after Keep(1) = %d generations, %v", len(gens), err)
	}
}

func TestLoadVerifiesAndFallsBack(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "good 1")
	mustSave(t, s, "good 2")
	mustSave(t, s, "good 3")

	raw := getObject(t, s, CheckpointObject)
	raw[len(raw)-40] ^= 0x40 // a bit flipped in the payload's checksum region
	putObject(t, s, CheckpointObject, raw)

	cp, got := mustLoad(t, s)
	var ce *checkpoint.CorruptError
	if cp.Header.Generation != 2 || got != "good 2" || len(cp.Skipped) != 1 || !errors.As(cp.Skipped[0], &ce) {
		t.Errorf("Load of a damaged checkpoint = generation %d %q, skipped %v; want generation 2 and the damage", cp.Header.Generation, got, cp.Skipped)
	}
	if _, err := s.Load(t.Context(), storage.Strict()); !errors.As(err, &ce) {
		t.Errorf("Strict Load: %v, want a *checkpoint.CorruptError", err)
	}

	gens, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(gens) != 3 || gens[0].Err == nil || gens[0].Generation != 3 || gens[1].Err != nil {
		t.Errorf("History = %+v; want generation 3 damaged, 2 and 1 intact", gens)
	}
	probs, err := s.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Kind != storage.ProblemCorrupt {
		t.Errorf("Verify = %+v, want one corrupt problem", probs)
	}

	// Damage every generation: nothing intact is left.
	for _, name := range []string{historyName(1), historyName(2)} {
		putObject(t, s, name, []byte("not a checkpoint"))
	}
	if _, err := s.Load(t.Context()); !errors.As(err, &ce) {
		t.Errorf("Load with no intact generation: %v, want a *checkpoint.CorruptError", err)
	}
	// A truncated object.
	putObject(t, s, CheckpointObject, raw[:len(raw)-10])
	if _, err := s.Load(t.Context(), storage.Strict()); !errors.As(err, &ce) {
		t.Errorf("Load of a truncated checkpoint: %v, want a *checkpoint.CorruptError", err)
	}
}

// A checkpoint larger than a part goes up as a multipart upload and comes
// back through a temporary file, verified.
func TestMultipartRoundTrip(t *testing.T) {
	t.Parallel()
	o := testOptions()
	o.PartSize = MinPartSize
	o.Concurrency = 3
	st := newStore(t, o)
	s := newSession(t, st)
	const size = 64 << 20
	payload := patternReader(size)
	saved, err := s.Save(t.Context(), payload)
	if err != nil {
		t.Fatal(err)
	}
	if saved.Size != size {
		t.Errorf("Save = %d bytes, want %d", saved.Size, size)
	}
	cp, err := s.Load(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	h := sha256.New()
	n, err := io.Copy(h, cp)
	if err != nil || n != size {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	want := sha256.New()
	io.Copy(want, patternReader(size))
	if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Error("the payload loaded differs from the one saved")
	}
	// A second save over a multipart object, kept as history by copy.
	mustSave(t, s, "small again")
	gens, err := s.History(t.Context())
	if err != nil || len(gens) != 2 || gens[1].Err != nil || gens[1].Size != size {
		t.Errorf("History = %+v, %v", gens, err)
	}
	if ups, err := s.uploads(t.Context(), time.Time{}); err != nil || len(ups) != 0 {
		t.Errorf("uploads left: %v, %v", ups, err)
	}
}

// Objects over the copy limit are kept as history with a multipart copy.
func TestMultipartCopy(t *testing.T) {
	o := testOptions()
	o.PartSize = MinPartSize
	st := newStore(t, o)
	st.testCopyLimit = 1 << 20
	s := newSession(t, st)
	mustSave(t, s, big(12<<20, 'c'))
	mustSave(t, s, "next")
	cp, got := mustLoad(t, s, storage.AtGeneration(1))
	if cp.Header.Generation != 1 || got != big(12<<20, 'c') {
		t.Errorf("generation 1 copied in parts: generation %d, %d bytes", cp.Header.Generation, len(got))
	}
}

// patternReader returns n bytes that are not all the same, generated on the
// fly.
func patternReader(n int64) io.Reader {
	return io.LimitReader(&pattern{}, n)
}

type pattern struct{ i uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for j := range b {
		b[j] = byte(p.i*7 + p.i>>11)
		p.i++
	}
	return len(b), nil
}

// Remove with RemoveIfGeneration removes only the generation it was told
// about, checked under the lease.
func TestRemoveIfGeneration(t *testing.T) {
	st := newStore(t, testOptions())
	s := newSession(t, st)
	mustSave(t, s, "base")
	ctx := context.Background()
	if err := s.Remove(ctx, false, storage.RemoveIfGeneration(0)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Remove of a session saved since: %v, want ErrConflict", err)
	}
	wantLoad(t, s, 1, "base")
	if exists(t, s, LeaseObject) {
		t.Error("a refused Remove left its lease")
	}
	if err := s.Remove(ctx, false, storage.RemoveIfGeneration(1)); err != nil {
		t.Fatalf("Remove with the right generation: %v", err)
	}
	if _, err := st.Open(ctx, s.ID()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Open after Remove: %v, want ErrNotFound", err)
	}
}
