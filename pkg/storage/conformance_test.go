package storage_test

// The conformance suite: every behaviour of a session, written once and run
// against every backend (restic's internal/backend/test is the model). A
// backend's own tests cover only what is its own (flock, leases, multipart).
//
// Run it against a new backend with runConformance; damage is done through
// the Backend (Put garbage, Delete), so that the suite needs to know
// nothing of where a backend keeps its bytes.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// harness is what the conformance suite needs of a backend.
type harness struct {
	// New returns the backend of a new session that has no object yet.
	New func(t *testing.T) storage.Backend
	// Stale leaves on b the lock of a writer that is gone, as a crash
	// does; nil skips the subtests that need one.
	Stale func(t *testing.T, b storage.Backend)
	// Writers and Saves size the concurrent subtests; 0 means 8 and 15.
	Writers, Saves int
}

// runConformance runs every behaviour test of a session against the
// backends h makes.
func runConformance(t *testing.T, h harness) {
	if h.Writers == 0 {
		h.Writers = 8
	}
	if h.Saves == 0 {
		h.Saves = 15
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, h harness)
	}{
		{"RoundTrip", testRoundTrip},
		{"NoCheckpoint", testNoCheckpoint},
		{"EmptyPayload", testEmptyPayload},
		{"IfGeneration", testIfGeneration},
		{"InvalidMetadata", testInvalidMetadata},
		{"InitTwice", testInitTwice},
		{"SaveFailureLosesNothing", testSaveFailureLosesNothing},
		{"LiveLock", testLiveLock},
		{"StaleLock", testStaleLock},
		{"LostLockAtCommit", testLostLockAtCommit},
		{"MetadataOnly", testMetadataOnly},
		{"MetadataOnlyGenerationZero", testMetadataOnlyGenerationZero},
		{"KeepGenerations", testKeepGenerations},
		{"KeepDistinctPayloads", testKeepDistinctPayloads},
		{"HistoryAfterMarkAndStep", testHistoryAfterMarkAndStep},
		{"FallbackDamagedManifest", testFallbackDamagedManifest},
		{"FallbackDamagedPayload", testFallbackDamagedPayload},
		{"EveryGenerationDamaged", testEveryGenerationDamaged},
		{"SaveOnDamagedManifest", testSaveOnDamagedManifest},
		{"Verify", testVerify},
		{"Sweep", testSweep},
		{"Remove", testRemove},
		{"Logs", testLogs},
		{"Tx", testTx},
		{"TxAbortRemovesPayload", testTxAbortRemovesPayload},
		{"ConcurrentCAS", testConcurrentCAS},
		{"Format1", testFormat1},
		{"SpoolTo", testSpoolTo},
		{"LoadProgress", testLoadProgress},
		{"StepIdentity", testStepIdentity},
		{"StepClaim", testStepClaim},
		{"StepConcurrentClaims", testStepConcurrentClaims},
		{"StepCrash", testStepCrash},
		{"StepMaxAttemptsNoReturn", testStepMaxAttemptsNoReturn},
		{"StepFailedSince", testStepFailedSince},
		{"StepLostClaim", testStepLostClaim},
		{"StepPrune", testStepPrune},
		{"StepNames", testStepNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

// initSession makes a new session at generation 0 on a new backend.
func initSession(t *testing.T, h harness, opts ...storage.SaveOption) (*storage.Session, storage.Backend) {
	t.Helper()
	b := h.New(t)
	s, err := storage.Init(t.Context(), b, opts...)
	if err != nil {
		t.Fatalf("Init: %v", err)
	}
	return s, b
}

// objects returns the names of the backend's objects with prefix, sorted.
func objects(t *testing.T, b storage.Backend, prefix string) []string {
	t.Helper()
	objs, err := b.List(t.Context())
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var out []string
	for _, o := range objs {
		if strings.HasPrefix(o.Name, prefix) {
			out = append(out, o.Name)
		}
	}
	slices.Sort(out)
	return out
}

// payloads returns the payload objects of the backend.
func payloads(t *testing.T, b storage.Backend) []string {
	return objects(t, b, storage.PayloadPrefix)
}

// wantNoLock checks that no lock is held on the session.
func wantNoLock(t *testing.T, s *storage.Session) {
	t.Helper()
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if st.Lock != nil {
		t.Errorf("a lock is left behind: %+v", st.Lock)
	}
}

// current returns the header of the current manifest.
func current(t *testing.T, s *storage.Session) *checkpoint.Header {
	t.Helper()
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	return st.Header
}

// wantCorrupt checks that err is a *checkpoint.CorruptError.
func wantCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	var ce *checkpoint.CorruptError
	if !errors.As(err, &ce) {
		t.Errorf("%s: error = %v, want a *checkpoint.CorruptError", what, err)
	}
}

// wantCorruptLoad checks that Load fails with a *checkpoint.CorruptError and
// hands out no reader.
func wantCorruptLoad(t *testing.T, s *storage.Session, opts ...storage.LoadOption) {
	t.Helper()
	cp, err := s.Load(t.Context(), opts...)
	wantCorrupt(t, "Load", err)
	if cp != nil {
		t.Errorf("Load handed out a reader for a corrupt checkpoint")
		cp.Close()
	}
}

// damage replaces object name through the backend with what f makes of its
// bytes.
func damage(t *testing.T, b storage.Backend, name string, f func([]byte) []byte) {
	t.Helper()
	data, _, err := b.ReadHead(t.Context(), name, 1<<30)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	if err := b.Put(t.Context(), name, f(bytes.Clone(data))); err != nil {
		t.Fatalf("damage %s: %v", name, err)
	}
}

func flipLast(b []byte) []byte { b[len(b)-1] ^= 0x10; return b }
func flipAt(i int) func([]byte) []byte {
	return func(b []byte) []byte { b[i%len(b)] ^= 0x10; return b }
}
func truncate(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:min(n, len(b))] } }
func garbage([]byte) []byte              { return []byte("this is not a manifest\n") }

func testRoundTrip(t *testing.T, h harness) {
	s, _ := initSession(t, h, storage.WithTitle("first"), storage.WithApp("app1"), storage.WithFlags([]string{"incomplete", "a"}, nil))
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	h0 := st.Header
	if h0 == nil || h0.Generation != 0 || st.Size != 0 || st.Lock != nil {
		t.Fatalf("Stat after Init = %+v, want generation 0, size 0, no lock", st)
	}
	if !h0.Created.Equal(h0.Saved) || h0.Title != "first" || h0.App != "app1" || !slices.Equal(h0.Flags, []string{"a", "incomplete"}) {
		t.Fatalf("header after Init = %+v", h0)
	}
	steps := []struct {
		payload   string
		opts      []storage.SaveOption
		title     string
		app       string
		flags     []string
		wantOwner string
	}{
		{payload: "one", title: "first", app: "app1", flags: []string{"a", "incomplete"}},
		{
			payload: big(300<<10, '2'), // more than Save's copy buffer
			opts: []storage.SaveOption{
				storage.WithTitle("second"),
				storage.WithFlags([]string{"submitted"}, []string{"incomplete"}),
				storage.WithCommand("test-runner step 2"),
			},
			title: "second", app: "app1", flags: []string{"a", "submitted"}, wantOwner: "test-runner step 2",
		},
		{
			payload: "three",
			opts:    []storage.SaveOption{storage.WithApp("app2"), storage.WithFlags(nil, []string{"a", "not-set"})},
			title:   "second", app: "app2", flags: []string{"submitted"},
		},
	}
	prevSaved := h0.Saved
	for i, sv := range steps {
		gen := uint64(i + 1)
		before := time.Now()
		saved, err := s.Save(t.Context(), strings.NewReader(sv.payload), sv.opts...)
		after := time.Now()
		if err != nil {
			t.Fatalf("Save %d: %v", gen, err)
		}
		if saved.Header.Generation != gen || saved.Size != int64(len(sv.payload)) {
			t.Errorf("Save %d returned generation %d, size %d", gen, saved.Header.Generation, saved.Size)
		}
		if saved.Header.Owner == nil || saved.Header.Owner.PID != os.Getpid() || saved.Header.Owner.Command != sv.wantOwner {
			t.Errorf("Save %d: owner = %+v, want this process with command %q", gen, saved.Header.Owner, sv.wantOwner)
		}
		cp, got := mustLoad(t, s, storage.Strict())
		hd := cp.Header
		if got != sv.payload || hd.Generation != gen || len(cp.Skipped) != 0 {
			t.Errorf("Load after save %d: generation %d, payload %.20q (%d bytes), skipped %v; want %.20q (%d bytes)", gen, hd.Generation, got, len(got), cp.Skipped, sv.payload, len(sv.payload))
		}
		if !hd.Created.Equal(h0.Created) {
			t.Errorf("save %d: Created = %v, want it carried over from Init: %v", gen, hd.Created, h0.Created)
		}
		if hd.Saved.Before(prevSaved) || hd.Saved.Before(before.Truncate(time.Microsecond)) || hd.Saved.After(after) {
			t.Errorf("save %d: Saved = %v, want between %v and %v and not before %v", gen, hd.Saved, before, after, prevSaved)
		}
		prevSaved = hd.Saved
		if hd.Title != sv.title || hd.App != sv.app || !slices.Equal(hd.Flags, sv.flags) {
			t.Errorf("save %d: title %q, app %q, flags %q; want %q, %q, %q", gen, hd.Title, hd.App, hd.Flags, sv.title, sv.app, sv.flags)
		}
		st, err := s.Stat(t.Context())
		if err != nil {
			t.Fatalf("Stat after save %d: %v", gen, err)
		}
		if st.ID != s.ID() || st.Header.Generation != gen || st.Size != int64(len(sv.payload)) || !st.Modified.Equal(hd.Saved) || st.Lock != nil {
			t.Errorf("Stat after save %d = {ID %q, generation %d, Size %d, Modified %v, Lock %+v}; want {%q, %d, %d, %v, nil}",
				gen, st.ID, st.Header.Generation, st.Size, st.Modified, st.Lock, s.ID(), gen, len(sv.payload), hd.Saved)
		}
	}
}

func testNoCheckpoint(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	if cp, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) || cp != nil {
		t.Errorf("Load of generation 0 = %v, %v; want nil, ErrNoCheckpoint", cp, err)
	}
	if cp, err := s.Load(t.Context(), storage.AtGeneration(0)); !errors.Is(err, storage.ErrNoGeneration) || cp != nil {
		t.Errorf("Load(AtGeneration(0)) = %v, %v; want ErrNoGeneration", cp, err)
	}
	hist, err := s.History(t.Context())
	if err != nil || len(hist) != 0 {
		t.Errorf("History of generation 0 = %+v, %v; want nothing", hist, err)
	}
	if r, _, err := s.StepLog(t.Context(), "build", 0); !errors.Is(err, storage.ErrNoLog) {
		t.Errorf("StepLog with no log = %v, %v; want ErrNoLog", r, err)
	}
}

func testEmptyPayload(t *testing.T, h harness) {
	t.Run("refused", func(t *testing.T) {
		s, b := initSession(t, h)
		if _, err := s.Save(t.Context(), strings.NewReader("")); !errors.Is(err, storage.ErrEmpty) {
			t.Errorf("Save on generation 0: error = %v, want ErrEmpty", err)
		}
		if _, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) {
			t.Errorf("Load: error = %v, want ErrNoCheckpoint", err)
		}
		mustSave(t, s, "previous")
		if _, err := s.Save(t.Context(), strings.NewReader(""), storage.WithTitle("changed")); !errors.Is(err, storage.ErrEmpty) {
			t.Errorf("Save: error = %v, want ErrEmpty", err)
		}
		if _, err := s.Save(t.Context(), nil); !errors.Is(err, storage.ErrEmpty) {
			t.Errorf("Save(nil): error = %v, want ErrEmpty", err)
		}
		wantNoLock(t, s)
		wantLoad(t, s, 1, "previous")
		if hd := current(t, s); hd.Title != "" {
			t.Errorf("the refused save changed the title to %q", hd.Title)
		}
		if p := payloads(t, b); len(p) != 1 {
			t.Errorf("payload objects after refused saves: %v, want one", p)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		s, _ := initSession(t, h)
		mustSave(t, s, "previous")
		saved, err := s.Save(t.Context(), strings.NewReader(""), storage.AllowEmpty())
		if err != nil {
			t.Fatalf("Save with AllowEmpty: %v", err)
		}
		if saved.Size != 0 || saved.Header.Generation != 2 {
			t.Errorf("Save = generation %d, size %d; want 2, 0", saved.Header.Generation, saved.Size)
		}
		wantLoad(t, s, 2, "")
		wantNoLock(t, s)
	})
}

func testIfGeneration(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	tests := []struct {
		name     string
		ifGen    uint64
		payload  string
		wantErr  error
		wantGen  uint64
		wantLoad string
	}{
		{name: "0 on a new session", ifGen: 0, payload: "a", wantGen: 1, wantLoad: "a"},
		{name: "match", ifGen: 1, payload: "b", wantGen: 2, wantLoad: "b"},
		{name: "stale expectation", ifGen: 1, payload: "c", wantErr: storage.ErrConflict, wantGen: 2, wantLoad: "b"},
		{name: "future generation", ifGen: 7, payload: "c", wantErr: storage.ErrConflict, wantGen: 2, wantLoad: "b"},
		{name: "match after a conflict", ifGen: 2, payload: "d", wantGen: 3, wantLoad: "d"},
	}
	for _, tt := range tests {
		saved, err := s.Save(t.Context(), strings.NewReader(tt.payload), storage.IfGeneration(tt.ifGen))
		switch {
		case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
			t.Fatalf("%s: Save: error = %v, want %v", tt.name, err, tt.wantErr)
		case tt.wantErr == nil && err != nil:
			t.Fatalf("%s: Save: %v", tt.name, err)
		case tt.wantErr == nil && saved.Header.Generation != tt.wantGen:
			t.Errorf("%s: Save: generation %d, want %d", tt.name, saved.Header.Generation, tt.wantGen)
		}
		wantLoad(t, s, tt.wantGen, tt.wantLoad)
	}
	// A metadata-only save is a compare-and-swap too.
	if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.IfGeneration(2)); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("metadata-only Save with a stale generation: %v, want ErrConflict", err)
	}
	wantNoLock(t, s)
}

func testInvalidMetadata(t *testing.T, h harness) {
	for _, tt := range []struct {
		name string
		opt  storage.SaveOption
	}{
		{"flag with a space", storage.WithFlags([]string{"bad flag"}, nil)},
		{"upper-case flag", storage.WithFlags([]string{"Bad"}, nil)},
		{"title too long", storage.WithTitle(strings.Repeat("t", checkpoint.MaxTitleLen+1))},
		{"title not UTF-8", storage.WithTitle("\xff")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := storage.Init(t.Context(), h.New(t), tt.opt); !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("Init: error = %v, want checkpoint.ErrInvalid", err)
			}
			s, b := initSession(t, h)
			mustSave(t, s, "good")
			if _, err := s.Save(t.Context(), strings.NewReader("new"), tt.opt); !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("Save: error = %v, want checkpoint.ErrInvalid", err)
			}
			if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), tt.opt); !errors.Is(err, checkpoint.ErrInvalid) {
				t.Errorf("metadata-only Save: error = %v, want checkpoint.ErrInvalid", err)
			}
			wantLoad(t, s, 1, "good")
			wantNoLock(t, s)
			if p := payloads(t, b); len(p) != 1 {
				t.Errorf("payload objects: %v, want one", p)
			}
		})
	}
}

func testInitTwice(t *testing.T, h harness) {
	s, b := initSession(t, h, storage.WithTitle("first"))
	if _, err := storage.Init(t.Context(), b, storage.WithTitle("second")); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("a second Init: %v, want ErrConflict", err)
	}
	hd := current(t, s)
	if hd.Title != "first" || hd.Generation != 0 {
		t.Errorf("after a second Init: %+v; want the first Init's generation 0", hd)
	}
	wantNoLock(t, s)
}

var errBoom = errors.New("boom: the producer failed")

// Every failure before the commit leaves the session as it was, leaves no
// lock and no payload object, and is returned.
func testSaveFailureLosesNothing(t *testing.T, h harness) {
	const n = 1 << 20 // past every buffer, so that the failing save wrote something
	tests := []struct {
		name    string
		payload func(cancel context.CancelFunc) *hookReader
		wantErr error
	}{
		{"reader fails at once", func(context.CancelFunc) *hookReader {
			return &hookReader{chunks: []string{"x"}, hook: map[int]func() error{0: func() error { return errBoom }}}
		}, errBoom},
		{"reader fails after 1 MiB", func(context.CancelFunc) *hookReader {
			return &hookReader{chunks: []string{big(n, 'n'), "x"}, hook: map[int]func() error{1: func() error { return errBoom }}}
		}, errBoom},
		{"context cancelled while streaming", func(cancel context.CancelFunc) *hookReader {
			return &hookReader{chunks: []string{big(n, 'c'), big(n, 'd')}, hook: map[int]func() error{1: func() error { cancel(); return nil }}}
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, b := initSession(t, h)
			mustSave(t, s, "good")
			before := payloads(t, b)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			locked := false
			r := tt.payload(cancel)
			first := r.hook[0]
			r.hook[0] = func() error {
				l, err := b.InspectLock(t.Context(), storage.NextFile)
				locked = err == nil && l != nil && !l.Stale
				if first != nil {
					return first()
				}
				return nil
			}
			saved, err := s.Save(ctx, r, storage.WithTitle("bad"))
			if !errors.Is(err, tt.wantErr) || saved != nil {
				t.Fatalf("Save = %v, %v; want nil, %v", saved, err, tt.wantErr)
			}
			if !locked {
				t.Errorf("the session was not locked while the payload streamed")
			}
			wantNoLock(t, s)
			wantLoad(t, s, 1, "good")
			if hd := current(t, s); hd.Title != "" {
				t.Errorf("title %q, want the old one", hd.Title)
			}
			if after := payloads(t, b); !slices.Equal(after, before) {
				t.Errorf("payload objects %v after the failed save, want %v", after, before)
			}
			if sv := mustSave(t, s, "next"); sv.Header.Generation != 2 {
				t.Errorf("the save after the failure got generation %d, want 2", sv.Header.Generation)
			}
		})
	}
	t.Run("context cancelled before Save", func(t *testing.T) {
		s, _ := initSession(t, h)
		mustSave(t, s, "good")
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Save(ctx, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
			t.Errorf("Save: error = %v, want context.Canceled", err)
		}
		wantNoLock(t, s)
		wantLoad(t, s, 1, "good")
	})
}

// wantLock checks a lock's staleness and, if pid is not 0, its owner.
func wantLock(t testing.TB, what string, l *storage.Lock, stale bool, pid int) {
	t.Helper()
	if l == nil {
		t.Fatalf("%s: no lock", what)
	}
	if l.Stale != stale || l.Reason == "" {
		t.Errorf("%s: lock stale = %v (%q), want %v with a reason", what, l.Stale, l.Reason, stale)
	}
	if pid == 0 {
		return
	}
	if l.Owner == nil {
		t.Fatalf("%s: lock has no owner, want pid %d", what, pid)
	}
	if host, _ := os.Hostname(); l.Owner.PID != pid || l.Owner.Host != host || l.Owner.Started.IsZero() {
		t.Errorf("%s: lock owner = %+v, want pid %d on %s with a start time", what, l.Owner, pid, host)
	}
}

// A live writer of another process: its lock, taken through the backend
// (which no in-process gate guards, as in another process), is reported,
// never broken without force, and waited for by a Waiter. Writers of this
// process wait for each other instead (concurrent_test.go).
func testLiveLock(t *testing.T, h harness) {
	s, b := initSession(t, h)
	mustSave(t, s, "good")
	held, err := b.Lock(t.Context(), storage.NextFile, storage.CurrentOwner("holder", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	aborted := make(chan struct{})
	defer func() {
		select {
		case <-aborted:
		default:
			held.Release(context.Background())
		}
	}()
	_, err = s.Save(t.Context(), strings.NewReader("other"))
	le := lockedError(t, "Save while locked", err)
	wantLock(t, "Save while locked", &le.Lock, false, os.Getpid())
	if le.Lost || le.Owner.Command != "holder" || le.Session != s.ID() || !strings.Contains(le.Error(), "live") {
		t.Errorf("LockedError = %+v (%q); want the holder's live lock of session %s", le, le, s.ID())
	}
	_, err = s.Save(t.Context(), nil, storage.KeepPayload())
	lockedError(t, "metadata-only Save while locked", err)
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantLock(t, "Stat", st.Lock, false, os.Getpid())
	if l, err := s.BreakLock(t.Context(), false); l != nil || err == nil {
		t.Errorf("BreakLock(false) of a live lock = %+v, %v; want a *LockedError", l, err)
	} else {
		lockedError(t, "BreakLock(false)", err)
	}
	lockedError(t, "Remove(false)", s.Remove(t.Context(), false))
	wantLoad(t, s, 1, "good") // readers never block
	if sw, err := s.Sweep(t.Context(), time.Now().Add(time.Hour), false); err != nil {
		t.Errorf("Sweep while locked: %v", err)
	} else if len(sw) != 0 {
		t.Errorf("Sweep while locked removed %v", sw)
	}
	// A Waiter waits for the holder.
	go func() {
		defer close(aborted)
		time.Sleep(50 * time.Millisecond)
		held.Release(context.Background())
	}()
	w := &storage.Waiter{Max: 30 * time.Second}
	err = w.Do(t.Context(), func() error { _, err := s.Save(t.Context(), strings.NewReader("waited")); return err })
	<-aborted
	if err != nil {
		t.Fatalf("Waiter.Do: %v", err)
	}
	wantLoad(t, s, 2, "waited")
	wantNoLock(t, s)
}

func testStaleLock(t *testing.T, h harness) {
	if h.Stale == nil {
		t.Skip("this backend's harness cannot leave a stale lock")
	}
	s, b := initSession(t, h)
	mustSave(t, s, "good")
	h.Stale(t, b)
	le := lockedError(t, "Save with a stale lock", func() error { _, err := s.Save(t.Context(), strings.NewReader("x")); return err }())
	wantLock(t, "Save", &le.Lock, true, 0)
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	wantLock(t, "Stat", st.Lock, true, 0)
	probs, err := s.Verify(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind == storage.ProblemStaleLock }) {
		t.Errorf("Verify = %+v, want a stale lock", probs)
	}
	l, err := s.BreakLock(t.Context(), false)
	if err != nil {
		t.Fatalf("BreakLock(false) of a stale lock: %v", err)
	}
	wantLock(t, "BreakLock", l, true, 0)
	if l, err := s.BreakLock(t.Context(), false); l != nil || err != nil {
		t.Errorf("BreakLock with no lock = %+v, %v; want nil, nil", l, err)
	}
	wantLoad(t, s, 1, "good")
	mustSave(t, s, "after")
	wantLoad(t, s, 2, "after")

	// A Waiter breaks a stale lock when told to, and Remove breaks one.
	h.Stale(t, b)
	w := &storage.Waiter{BreakStale: func(ctx context.Context, _ *storage.LockedError) error {
		_, err := s.BreakLock(ctx, false)
		return err
	}}
	if err := w.Do(t.Context(), func() error { _, err := s.Save(t.Context(), strings.NewReader("third")); return err }); err != nil {
		t.Fatalf("Waiter.Do with BreakStale: %v", err)
	}
	wantLoad(t, s, 3, "third")
	h.Stale(t, b)
	if err := s.Remove(t.Context(), false, storage.RemoveIfGeneration(3)); err != nil {
		t.Fatalf("Remove with a stale lock: %v", err)
	}
	if err := b.Check(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Check after Remove: %v, want ErrNotFound", err)
	}
}

// A writer whose lock is broken under it fails at its commit, leaves
// nothing, and the save that took the lock after it wins; the history it
// started from stays as it was.
func testLostLockAtCommit(t *testing.T, h harness) {
	s, b := initSession(t, h)
	mustSave(t, s, "before")
	tx, err := s.Begin(t.Context(), storage.WithTitle("first"))
	if err != nil {
		t.Fatal(err)
	}
	broken, err := s.BreakLock(t.Context(), true)
	if err != nil {
		t.Fatalf("BreakLock(true): %v", err)
	}
	wantLock(t, "BreakLock(true)", broken, false, os.Getpid())
	other := mustSave(t, s, "other", storage.WithTitle("other"))
	if other.Header.Generation != 2 {
		t.Fatalf("the other save got generation %d", other.Header.Generation)
	}
	saved, err := tx.Commit(t.Context(), strings.NewReader("first writer"))
	le := lockedError(t, "the broken writer's Commit", err)
	if !le.Lost || saved != nil {
		t.Errorf("the broken writer's Commit = %+v, %v; want a Lost *LockedError", saved, le)
	}
	wantLoad(t, s, 2, "other")
	if hd := current(t, s); hd.Title != "other" {
		t.Errorf("title %q, want the other save's", hd.Title)
	}
	cp, got := mustLoad(t, s, storage.AtGeneration(1))
	if cp.Header.Generation != 1 || got != "before" {
		t.Errorf("Load(AtGeneration(1)) = generation %d, %q; want 1, \"before\"", cp.Header.Generation, got)
	}
	wantNoLock(t, s)
	if p := payloads(t, b); len(p) != 2 {
		t.Errorf("payload objects %v, want the two committed ones", p)
	}
	// The broken writer's lock does not come back when it lets go.
	if err := tx.Abort(); err != nil {
		t.Errorf("Abort after a lost commit: %v", err)
	}
	mustSave(t, s, "third")
}

func testMetadataOnly(t *testing.T, h harness) {
	s, b := initSession(t, h, storage.WithTitle("run"))
	mustSave(t, s, "state")
	before := payloads(t, b)
	obj := current(t, s).Payload.Object
	for i, opts := range [][]storage.SaveOption{
		{storage.WithFlags([]string{"submitted"}, nil)},
		{storage.WithTitle("renamed")},
		{storage.WithStep(checkpoint.Step{Name: "build", State: checkpoint.StepPassed, Attempts: 1, Started: time.Now().UTC()})},
		{storage.WithFlags(nil, []string{"submitted"}), storage.IfGeneration(4)},
	} {
		gen := uint64(i + 2)
		saved, err := s.Save(t.Context(), strings.NewReader("ignored"), append(opts, storage.KeepPayload())...)
		if err != nil {
			t.Fatalf("metadata-only save %d: %v", gen, err)
		}
		if saved.Header.Generation != gen || saved.Size != int64(len("state")) || saved.Header.Payload == nil || saved.Header.Payload.Object != obj {
			t.Errorf("metadata-only save %d = %+v, size %d; want generation %d with payload %s", gen, saved.Header, saved.Size, gen, obj)
		}
		if after := payloads(t, b); !slices.Equal(after, before) {
			t.Errorf("metadata-only save %d: payload objects %v, want %v: no new one", gen, after, before)
		}
	}
	cp, got := mustLoad(t, s, storage.Strict())
	hd := cp.Header
	if got != "state" || hd.Generation != 5 || hd.HasFlag("submitted") || hd.Title != "renamed" || hd.Step("build") == nil {
		t.Errorf("Load = %q, %+v; want the old payload with the new metadata", got, hd)
	}
	// Metadata-only generations share the payload: history keeps only the
	// newest one before the current, so that a damaged current manifest
	// falls back to the same payload.
	hist, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Generation != 5 || hist[1].Generation != 4 || hist[0].Err != nil || hist[1].Err != nil {
		t.Errorf("History = %+v, want generations 5 and 4", hist)
	}
}

// On a session never saved there is no payload to keep: the new generation
// still has no checkpoint to load (NoPayload), so that a resume script's
// "load, else start afresh" keeps working after a step record.
func testMetadataOnlyGenerationZero(t *testing.T, h harness) {
	s, b := initSession(t, h)
	saved, err := s.Save(t.Context(), strings.NewReader("ignored"), storage.KeepPayload(), storage.WithFlags([]string{"x"}, nil))
	if err != nil {
		t.Fatalf("Save(KeepPayload) on generation 0: %v", err)
	}
	if saved.Size != 0 || saved.Header.Generation != 1 || !saved.Header.NoPayload || !saved.Header.HasFlag("x") {
		t.Errorf("Save(KeepPayload) on generation 0 saved %+v, size %d", saved.Header, saved.Size)
	}
	if _, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNoCheckpoint) {
		t.Errorf("Load after a metadata-only save: %v, want ErrNoCheckpoint", err)
	}
	if p := payloads(t, b); len(p) != 0 {
		t.Errorf("payload objects %v, want none", p)
	}
	mustSave(t, s, "real")
	saved, err = s.Save(t.Context(), nil, storage.KeepPayload())
	if err != nil || saved.Header.NoPayload {
		t.Fatalf("KeepPayload after a real save: %v, NoPayload %v", err, saved != nil && saved.Header.NoPayload)
	}
	wantLoad(t, s, 3, "real")
}

func payloadOf(gen uint64) string { return strings.Repeat(string(rune('a'+gen%26)), int(gen)*10) }

func testKeepGenerations(t *testing.T, h harness) {
	for _, tt := range []struct {
		name  string
		opts  []storage.SaveOption
		saves int
		want  []uint64 // generations kept, newest first
	}{
		{name: "default", saves: 5, want: []uint64{5, 4, 3}},
		{name: "keep 1", opts: []storage.SaveOption{storage.Keep(1)}, saves: 4, want: []uint64{4}},
		{name: "keep 2", opts: []storage.SaveOption{storage.Keep(2)}, saves: 4, want: []uint64{4, 3}},
		{name: "keep more than saved", opts: []storage.SaveOption{storage.Keep(10)}, saves: 3, want: []uint64{3, 2, 1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, b := initSession(t, h)
			for i := 1; i <= tt.saves; i++ {
				mustSave(t, s, payloadOf(uint64(i)), tt.opts...)
			}
			hist, err := s.History(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			var got []uint64
			for i, g := range hist {
				got = append(got, g.Generation)
				if g.Err != nil || g.Current != (i == 0) || g.Header == nil || g.Header.Generation != g.Generation || g.Size != int64(len(payloadOf(g.Generation))) || g.Path == "" {
					t.Errorf("History[%d] = %+v", i, g)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("History: generations %v, want %v", got, tt.want)
			}
			for g := uint64(1); g <= uint64(tt.saves); g++ {
				cp, err := s.Load(t.Context(), storage.AtGeneration(g))
				if !slices.Contains(tt.want, g) {
					if !errors.Is(err, storage.ErrNoGeneration) || cp != nil {
						t.Errorf("Load(AtGeneration(%d)) = %v, %v; want ErrNoGeneration", g, cp, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Load(AtGeneration(%d)): %v", g, err)
					continue
				}
				got, _ := readAllClose(cp)
				if cp.Header.Generation != g || got != payloadOf(g) {
					t.Errorf("Load(AtGeneration(%d)) = generation %d, %q", g, cp.Header.Generation, got)
				}
			}
			if p := payloads(t, b); len(p) != len(tt.want) {
				t.Errorf("payload objects %v, want %d: one per kept generation", p, len(tt.want))
			}
			if hs := objects(t, b, storage.CheckpointFile+"."); len(hs) != len(tt.want)-1 {
				t.Errorf("history manifests %v, want %d", hs, len(tt.want)-1)
			}
		})
	}
}

// --keep K keeps the last K distinct payloads: metadata-only generations
// never push a payload out.
func testKeepDistinctPayloads(t *testing.T, h harness) {
	s, b := initSession(t, h)
	const keep = 3
	for i := 1; i <= 4; i++ {
		mustSave(t, s, fmt.Sprintf("payload %d", i), storage.Keep(keep))
		for range 4 {
			if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithFlags([]string{fmt.Sprintf("f%d", i)}, nil), storage.Keep(keep)); err != nil {
				t.Fatalf("metadata-only save: %v", err)
			}
		}
	}
	hist, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range hist {
		if g.Err != nil {
			t.Errorf("History: generation %d: %v", g.Generation, g.Err)
			continue
		}
		cp, p := mustLoad(t, s, storage.AtGeneration(g.Generation))
		if cp.Header.Generation != g.Generation {
			t.Errorf("Load(AtGeneration(%d)) = generation %d", g.Generation, cp.Header.Generation)
		}
		got = append(got, p)
	}
	// The current generation, the newest generation before it (the same
	// payload), and one generation of each of the two payloads before.
	if want := []string{"payload 4", "payload 4", "payload 3", "payload 2"}; !slices.Equal(got, want) {
		t.Errorf("History payloads %q, want %q", got, want)
	}
	if p := payloads(t, b); len(p) != keep {
		t.Errorf("payload objects %v, want %d", p, keep)
	}
}

// History lists the kept generations of a session whose latest generations
// are step and mark records.
func testHistoryAfterMarkAndStep(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	mustSave(t, s, "one")
	mustSave(t, s, "two")
	if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithFlags([]string{"submitted"}, nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithStep(checkpoint.Step{Name: "build", State: checkpoint.StepPassed, Attempts: 1, Started: time.Now().UTC()})); err != nil {
		t.Fatal(err)
	}
	hist, err := s.History(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var gens []uint64
	for _, g := range hist {
		gens = append(gens, g.Generation)
		if g.Err != nil {
			t.Errorf("History: generation %d: %v", g.Generation, g.Err)
		}
	}
	if !slices.Equal(gens, []uint64{4, 3, 1}) {
		t.Errorf("History after save, save, mark, step: generations %v, want [4 3 1]", gens)
	}
	if cp, got := mustLoad(t, s, storage.AtGeneration(1)); got != "one" || cp.Header.Generation != 1 {
		t.Errorf("Load(AtGeneration(1)) = generation %d %q", cp.Header.Generation, got)
	}
}

func testFallbackDamagedManifest(t *testing.T, h harness) {
	for _, tt := range []struct {
		name string
		f    func([]byte) []byte
	}{
		{"garbage", garbage},
		{"bit flipped in the header", flipAt(20)},
		{"bit flipped in the checksum", flipLast},
		{"truncated", truncate(30)},
		{"empty", truncate(0)},
		{"byte appended", func(b []byte) []byte { return append(b, '\n') }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, b := initSession(t, h)
			mustSave(t, s, "one")
			mustSave(t, s, "two")
			damage(t, b, storage.CheckpointFile, tt.f)
			wantCorruptLoad(t, s, storage.Strict())
			_, err := s.Stat(t.Context())
			wantCorrupt(t, "Stat", err)
			cp, got := mustLoad(t, s)
			if cp.Header.Generation != 1 || got != "one" || len(cp.Skipped) != 1 {
				t.Errorf("Load fell back to generation %d, %q, skipping %v; want generation 1, skipping the current one", cp.Header.Generation, got, cp.Skipped)
			} else {
				wantCorrupt(t, "Skipped[0]", cp.Skipped[0])
			}
			hist, err := s.History(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) == 0 || !hist[0].Current || hist[0].Err == nil {
				t.Errorf("History = %+v, want the damaged current generation first", hist)
			}
			probs, err := s.Verify(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind == storage.ProblemCorrupt }) {
				t.Errorf("Verify = %+v, want a corrupt generation", probs)
			}
		})
	}
}

func testFallbackDamagedPayload(t *testing.T, h harness) {
	for _, tt := range []struct {
		name string
		do   func(t *testing.T, b storage.Backend, obj string)
	}{
		{"bit flipped", func(t *testing.T, b storage.Backend, obj string) { damage(t, b, obj, flipAt(1000)) }},
		{"truncated", func(t *testing.T, b storage.Backend, obj string) { damage(t, b, obj, truncate(100)) }},
		{"byte appended", func(t *testing.T, b storage.Backend, obj string) {
			damage(t, b, obj, func(p []byte) []byte { return append(p, 0) })
		}},
		{"missing", func(t *testing.T, b storage.Backend, obj string) {
			if err := b.Delete(t.Context(), obj); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, b := initSession(t, h)
			mustSave(t, s, big(4096, '1'))
			mustSave(t, s, big(4096, '2'))
			if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithTitle("marked")); err != nil {
				t.Fatal(err)
			}
			tt.do(t, b, current(t, s).Payload.Object)
			// The manifest is intact: Stat trusts it without the payload.
			if hd := current(t, s); hd.Generation != 3 {
				t.Errorf("Stat: generation %d, want 3", hd.Generation)
			}
			wantCorruptLoad(t, s, storage.Strict())
			cp, err := s.Load(t.Context(), storage.AtGeneration(3))
			wantCorrupt(t, "Load(AtGeneration(3))", err)
			if cp != nil {
				cp.Close()
			}
			// Generation 2 shares the damaged payload: skipped too.
			cp, got := mustLoad(t, s)
			if cp.Header.Generation != 1 || got != big(4096, '1') || len(cp.Skipped) != 2 {
				t.Errorf("Load fell back to generation %d (%d bytes), skipping %v; want generation 1, past 3 and 2", cp.Header.Generation, len(got), cp.Skipped)
			}
			hist, err := s.History(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 3 || hist[0].Err == nil || hist[1].Err == nil || hist[2].Err != nil {
				t.Errorf("History = %+v, want generations 3 and 2 damaged (one payload) and an intact generation 1", hist)
			}
			// The next save builds on what is intact and works.
			mustSave(t, s, "next")
			wantLoad(t, s, 4, "next")
		})
	}
}

func testEveryGenerationDamaged(t *testing.T, h harness) {
	s, b := initSession(t, h)
	for _, p := range []string{"1", "2", "3"} {
		mustSave(t, s, big(4096, p[0]))
	}
	for _, obj := range payloads(t, b) {
		damage(t, b, obj, flipLast)
	}
	wantCorruptLoad(t, s)
	for _, g := range []uint64{1, 2, 3} {
		cp, err := s.Load(t.Context(), storage.AtGeneration(g))
		wantCorrupt(t, fmt.Sprintf("Load(AtGeneration(%d))", g), err)
		if cp != nil {
			cp.Close()
		}
	}
	// Every manifest too.
	for _, name := range append(objects(t, b, storage.CheckpointFile), storage.CheckpointFile) {
		damage(t, b, name, garbage)
	}
	wantCorruptLoad(t, s)
}

// A save on a session whose current manifest is damaged builds on the
// newest intact generation, the metadata-only save of a step record too.
func testSaveOnDamagedManifest(t *testing.T, h harness) {
	s, b := initSession(t, h, storage.WithTitle("t"))
	mustSave(t, s, "one")
	mustSave(t, s, "two")
	damage(t, b, storage.CheckpointFile, garbage)
	saved, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithFlags([]string{"marked"}, nil))
	if err != nil {
		t.Fatalf("metadata-only save on a damaged manifest: %v", err)
	}
	if saved.Header.Generation != 2 || saved.Header.Title != "t" {
		t.Errorf("metadata-only save = %+v, want generation 2 built on generation 1", saved.Header)
	}
	cp, got := mustLoad(t, s, storage.Strict())
	if got != "one" || !cp.Header.HasFlag("marked") {
		t.Errorf("Load = generation %d %q %v, want generation 1's payload with the flag", cp.Header.Generation, got, cp.Header.Flags)
	}
	mustSave(t, s, "three")
	wantLoad(t, s, 3, "three")
	wantNoLock(t, s)
}

func testVerify(t *testing.T, h harness) {
	aged := func(t *testing.T) storage.Backend {
		f := newFaultBackend(h.New(t))
		f.age = time.Hour
		return f
	}
	kinds := func(probs []storage.Problem) []string {
		var out []string
		for _, p := range probs {
			out = append(out, p.Kind)
		}
		return out
	}
	ha := h
	ha.New = aged
	t.Run("clean", func(t *testing.T) {
		s, _ := initSession(t, ha)
		mustSave(t, s, "one")
		mustSave(t, s, "two")
		if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithTitle("x")); err != nil {
			t.Fatal(err)
		}
		if probs, err := s.Verify(t.Context()); err != nil || len(probs) != 0 {
			t.Errorf("Verify of a clean session = %+v, %v", probs, err)
		}
	})
	t.Run("corrupt", func(t *testing.T) {
		s, b := initSession(t, ha)
		mustSave(t, s, "one")
		mustSave(t, s, "two")
		damage(t, b, current(t, s).Payload.Object, flipLast)
		probs, err := s.Verify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if k := kinds(probs); !slices.Equal(k, []string{storage.ProblemCorrupt}) {
			t.Errorf("Verify = %+v, want one corrupt generation", probs)
		}
	})
	t.Run("orphans", func(t *testing.T) {
		s, b := initSession(t, ha)
		mustSave(t, s, "one")
		orphan := storage.PayloadPrefix + "0123456789abcdef0123456789abcdef"
		if _, err := b.Create(t.Context(), orphan, strings.NewReader("left by a crash")); err != nil {
			t.Fatal(err)
		}
		if err := b.Put(t.Context(), "junk", []byte("x")); err != nil {
			t.Fatal(err)
		}
		probs, err := s.Verify(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if k := kinds(probs); !slices.Equal(k, []string{storage.ProblemOrphan, storage.ProblemOrphan}) {
			t.Errorf("Verify = %+v, want two orphans", probs)
		}
		for _, p := range probs {
			if !strings.HasSuffix(p.Path, orphan) && !strings.HasSuffix(p.Path, "junk") {
				t.Errorf("Verify: orphan %s is neither planted object", p.Path)
			}
		}
		wantLoad(t, s, 1, "one")
	})
	t.Run("young orphan", func(t *testing.T) {
		// A payload just written may be a writer's, about to be
		// committed: it is not reported.
		s, b := initSession(t, h)
		mustSave(t, s, "one")
		if _, err := b.Create(t.Context(), storage.PayloadPrefix+"00ff", strings.NewReader("young")); err != nil {
			t.Fatal(err)
		}
		if probs, err := s.Verify(t.Context()); err != nil || len(probs) != 0 {
			t.Errorf("Verify = %+v, %v; want nothing", probs, err)
		}
	})
}

func testSweep(t *testing.T, h harness) {
	// Objects look two hours old: Sweep spares what a writer may still
	// commit (an hour's grace), however late the cutoff.
	inner := h.New
	h.New = func(t *testing.T) storage.Backend {
		f := newFaultBackend(inner(t))
		f.age = 2 * time.Hour
		return f
	}
	s, b := initSession(t, h)
	mustSave(t, s, "one")
	mustSave(t, s, "two")
	live := payloads(t, b)
	orphan := storage.PayloadPrefix + "aaaa"
	if _, err := b.Create(t.Context(), orphan, strings.NewReader("orphan")); err != nil {
		t.Fatal(err)
	}
	past, future := time.Now().Add(-3*time.Hour), time.Now().Add(time.Hour)

	// Younger than the cutoff: kept.
	if sw, err := s.Sweep(t.Context(), past, false); err != nil || len(sw) != 0 {
		t.Errorf("Sweep(three hours ago) = %v, %v; want nothing", sw, err)
	}
	// A live writer holds the lock: kept, whatever its age.
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if sw, err := s.Sweep(t.Context(), future, false); err != nil || len(sw) != 0 {
		t.Errorf("Sweep with a live writer = %v, %v; want nothing", sw, err)
	}
	if !slices.Contains(payloads(t, b), orphan) {
		t.Fatal("Sweep removed a payload while a writer held the lock")
	}
	tx.Abort()
	// Dry run: reported, kept.
	sw, err := s.Sweep(t.Context(), future, true)
	if err != nil || len(sw) != 1 || !strings.HasSuffix(sw[0], orphan) {
		t.Errorf("Sweep(dry run) = %v, %v; want the orphan", sw, err)
	}
	if !slices.Contains(payloads(t, b), orphan) {
		t.Fatal("a dry run removed the orphan")
	}
	sw, err = s.Sweep(t.Context(), future, false)
	if err != nil || len(sw) != 1 || !strings.HasSuffix(sw[0], orphan) {
		t.Errorf("Sweep = %v, %v; want the orphan", sw, err)
	}
	if got := payloads(t, b); !slices.Equal(got, live) {
		t.Errorf("after Sweep: payloads %v, want the reachable ones %v", got, live)
	}
	wantLoad(t, s, 2, "two")
	cp, got := mustLoad(t, s, storage.AtGeneration(1))
	if got != "one" || cp.Header.Generation != 1 {
		t.Errorf("after Sweep: generation 1 = %q", got)
	}
	wantNoLock(t, s)
}

func testRemove(t *testing.T, h harness) {
	s, b := initSession(t, h)
	mustSave(t, s, "base")
	if err := s.Remove(t.Context(), false, storage.RemoveIfGeneration(0)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Remove of a session saved since: %v, want ErrConflict", err)
	}
	wantLoad(t, s, 1, "base")
	wantNoLock(t, s)
	if err := s.Remove(t.Context(), false, storage.RemoveIfGeneration(1)); err != nil {
		t.Fatalf("Remove(RemoveIfGeneration(1)): %v", err)
	}
	if err := b.Check(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Check after Remove: %v, want ErrNotFound", err)
	}
	if _, err := s.Load(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Load after Remove: %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after Remove: %v, want ErrNotFound", err)
	}
	if err := s.Remove(t.Context(), false); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Remove of a removed session: %v, want ErrNotFound", err)
	}

	// Remove holds the lock: a writer meanwhile is refused.
	s, _ = initSession(t, h)
	mustSave(t, s, "base")
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lockedError(t, "Remove with a live writer", s.Remove(t.Context(), false))
	if err := s.Remove(t.Context(), true); err != nil {
		t.Fatalf("Remove(force) with a live writer: %v", err)
	}
	if _, err := tx.Commit(t.Context(), strings.NewReader("late")); err == nil {
		t.Error("a writer committed into a removed session")
	}
	if _, err := s.Stat(t.Context()); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat after the late commit: %v, want ErrNotFound", err)
	}
}

func testLogs(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	const limit = 4096
	c, err := s.StartStep(t.Context(), "build", storage.StepOptions{Identity: checkpoint.Identity{Key: "a"}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.OpenLog(t.Context(), limit)
	if err != nil {
		t.Fatal(err)
	}
	var all bytes.Buffer
	for i := range 2000 {
		line := fmt.Sprintf("line %d\n", i)
		all.WriteString(line)
		if _, err := io.WriteString(w, line); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.End(t.Context(), checkpoint.StepFailed, 1); err != nil {
		t.Fatal(err)
	}
	readLog := func(n int) (string, int) {
		t.Helper()
		r, got, err := s.StepLog(t.Context(), "build", n)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), got
	}
	got, n := readLog(0)
	tail := limit / 4
	if n != 1 || !strings.HasPrefix(got, all.String()[:limit-tail]) || !strings.HasSuffix(got, all.String()[all.Len()-tail:]) {
		t.Errorf("log of attempt %d does not keep the first %d and last %d bytes", n, limit-tail, tail)
	}
	if !strings.Contains(got, "left out") || len(got) > limit+200 {
		t.Errorf("log is %d bytes for a limit of %d, or does not say what was left out", len(got), limit)
	}
	// A second attempt has a log of its own; the first one's is kept.
	runStep(t, s, "build", storage.StepOptions{Identity: checkpoint.Identity{Key: "a"}}, "short\n")
	if got, n := readLog(0); got != "short\n" || n != 2 {
		t.Errorf("latest log = attempt %d, %q", n, got)
	}
	if got, _ := readLog(1); !strings.HasPrefix(got, "line 0\n") {
		t.Errorf("log of attempt 1 after a second one = %.20q", got)
	}
	if _, _, err := s.StepLog(t.Context(), "test", 0); !errors.Is(err, storage.ErrNoLog) {
		t.Errorf("StepLog of a step without a log: %v, want ErrNoLog", err)
	}
	if _, _, err := s.StepLog(t.Context(), "build", 3); !errors.Is(err, storage.ErrNoLog) {
		t.Errorf("StepLog of an attempt that never ran: %v, want ErrNoLog", err)
	}
	for _, bad := range []string{"", "-flag", "a\nb", "\x1b[2J", strings.Repeat("x", checkpoint.MaxStepNameLen+1)} {
		if _, err := s.StartStep(t.Context(), bad, storage.StepOptions{}); err == nil {
			t.Errorf("StartStep(%q) succeeded", bad)
		}
		if _, _, err := s.StepLog(t.Context(), bad, 0); err == nil || errors.Is(err, storage.ErrNoLog) {
			t.Errorf("StepLog(%q) = %v, want an invalid name", bad, err)
		}
	}
	// Steps and logs are no objects of the protocol.
	if probs, err := s.Verify(t.Context()); err != nil || slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind == storage.ProblemOrphan }) {
		t.Errorf("Verify with logs = %+v, %v", probs, err)
	}
}

func testTx(t *testing.T, h harness) {
	t.Run("Lock holds the lock", func(t *testing.T) {
		s, _ := initSession(t, h)
		mustSave(t, s, "one")
		tx, unlock, err := s.Lock(t.Context(), storage.WithTitle("two"))
		if err != nil {
			t.Fatal(err)
		}
		defer unlock()
		if tx.Base().Generation != 1 || tx.Next().Generation != 2 || tx.Next().Title != "two" {
			t.Fatalf("base %d, next %d %q", tx.Base().Generation, tx.Next().Generation, tx.Next().Title)
		}
		// A writer of this process waits for the transaction: here until
		// its deadline.
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		if _, err := s.Save(ctx, strings.NewReader("intruder")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("save during a transaction: %v, want it to wait until its deadline", err)
		}
		cp, err := tx.Load(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := readAllClose(cp)
		if b != "one" {
			t.Fatalf("tx.Load = %q", b)
		}
		saved, err := tx.Commit(t.Context(), strings.NewReader(b+"+two"))
		if err != nil {
			t.Fatal(err)
		}
		if saved.Header.Generation != 2 {
			t.Errorf("committed generation %d", saved.Header.Generation)
		}
		if err := unlock(); err != nil {
			t.Errorf("unlock after commit: %v", err)
		}
		wantLoad(t, s, 2, "one+two")
		if _, err := tx.Commit(t.Context(), strings.NewReader("again")); err == nil {
			t.Error("a second Commit succeeded")
		}
		mustSave(t, s, "three")
	})
	t.Run("Run", func(t *testing.T) {
		s, b := initSession(t, h)
		mustSave(t, s, "base")
		failure := errors.New("the step failed")
		for _, tc := range []struct {
			name    string
			fn      func(ctx context.Context, tx *storage.Tx) error
			wantErr error
			wantGen uint64
			want    string
		}{
			{"commit", func(ctx context.Context, tx *storage.Tx) error {
				_, err := tx.Commit(ctx, strings.NewReader("committed"))
				return err
			}, nil, 2, "committed"},
			{"empty transaction", func(ctx context.Context, tx *storage.Tx) error { return nil }, nil, 2, "committed"},
			{"abort on error", func(ctx context.Context, tx *storage.Tx) error { return failure }, failure, 2, "committed"},
		} {
			before := objects(t, b, "")
			saved, err := s.Run(t.Context(), tc.fn)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("%s: Run = %v, want %v", tc.name, err, tc.wantErr)
			}
			if (saved != nil) != (tc.name == "commit") {
				t.Errorf("%s: Run returned %+v", tc.name, saved)
			}
			wantLoad(t, s, tc.wantGen, tc.want)
			wantNoLock(t, s)
			if tc.name != "commit" {
				if after := objects(t, b, ""); !slices.Equal(after, before) {
					t.Errorf("%s: objects %v, were %v: a transaction without commit changed the session", tc.name, after, before)
				}
			}
		}
	})
	t.Run("Begin IfGeneration", func(t *testing.T) {
		s, _ := initSession(t, h)
		mustSave(t, s, "base")
		if _, err := s.Begin(t.Context(), storage.IfGeneration(0)); !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("Begin with a stale generation: %v", err)
		}
		wantNoLock(t, s)
		tx, err := s.Begin(t.Context(), storage.IfGeneration(1))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := tx.Abort(); err != nil {
			t.Errorf("second Abort: %v", err)
		}
		if _, err := tx.Commit(t.Context(), strings.NewReader("x")); err == nil {
			t.Error("Commit after Abort succeeded")
		}
		wantNoLock(t, s)
		wantLoad(t, s, 1, "base")
	})
	t.Run("KeepPayload needs a checkpoint", func(t *testing.T) {
		s, _ := initSession(t, h)
		if tx, err := s.Begin(t.Context(), storage.KeepPayload()); err != nil {
			t.Errorf("Begin(KeepPayload) on generation 0: %v", err)
		} else {
			tx.Abort()
		}
	})
}

// A commit that fails after the payload is stored removes the payload.
func testTxAbortRemovesPayload(t *testing.T, h harness) {
	s, b := initSession(t, h)
	mustSave(t, s, "base")
	before := payloads(t, b)
	// A conflict found at commit: another writer saved in between (its
	// lock broken with force), after the payload was written.
	tx, err := s.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	r := &hookReader{chunks: []string{"half ", "payload"}, hook: map[int]func() error{1: func() error {
		if _, err := s.BreakLock(t.Context(), true); err != nil {
			return err
		}
		_, err := s.Save(t.Context(), strings.NewReader("other"))
		return err
	}}}
	if _, err := tx.Commit(t.Context(), r); err == nil {
		t.Fatal("a commit after the lock was broken succeeded")
	}
	wantLoad(t, s, 2, "other")
	after := payloads(t, b)
	if len(after) != len(before)+1 {
		t.Errorf("payload objects %v (were %v): the failed commit left its payload", after, before)
	}
	wantNoLock(t, s)
}

// Writers that compare-and-swap with IfGeneration never lose an update, and
// readers never block and never see a partial checkpoint.
func testConcurrentCAS(t *testing.T, h harness) {
	s, _ := initSession(t, h)
	var (
		writers, saves = h.Writers, h.Saves
		wg             sync.WaitGroup
		mu             sync.Mutex
		gens           []uint64
		conflicts      atomic.Int64
		locked         atomic.Int64
		loads          atomic.Int64
		done           = make(chan struct{})
	)
	for w := range writers {
		wg.Go(func() {
			for i := range saves {
				unit := fmt.Sprintf("writer %d save %d|", w, i)
				payload := strings.Repeat(unit, 1+(w*saves+i)%50)
				for {
					st, err := s.Stat(t.Context())
					if err != nil {
						t.Errorf("writer %d: Stat: %v", w, err)
						return
					}
					opts := []storage.SaveOption{storage.IfGeneration(st.Header.Generation)}
					p := io.Reader(strings.NewReader(payload))
					if i%3 == 2 && st.Header.Generation > 0 {
						opts = append(opts, storage.KeepPayload(), storage.WithTitle(unit))
						p = nil
					}
					saved, err := s.Save(t.Context(), p, opts...)
					var le *storage.LockedError
					switch {
					case err == nil:
						mu.Lock()
						gens = append(gens, saved.Header.Generation)
						mu.Unlock()
					case errors.Is(err, storage.ErrConflict):
						conflicts.Add(1)
						continue
					case errors.As(err, &le) && !le.Stale && !le.Lost:
						locked.Add(1)
						time.Sleep(time.Millisecond)
						continue
					default:
						t.Errorf("writer %d: Save: %v", w, err)
						return
					}
					break
				}
			}
		})
	}
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				cp, err := s.Load(t.Context())
				switch {
				case errors.Is(err, storage.ErrNoCheckpoint):
					continue
				case err != nil:
					t.Errorf("reader %d: Load: %v", r, err)
					return
				}
				b, err := io.ReadAll(cp)
				cp.Close()
				if err != nil || int64(len(b)) != cp.Size || len(cp.Skipped) != 0 {
					t.Errorf("reader %d: read %d of %d bytes, %v, skipped %v", r, len(b), cp.Size, err, cp.Skipped)
					return
				}
				// A payload is one unit repeated: a torn one would not be.
				str := string(b)
				unit := str[:strings.IndexByte(str, '|')+1]
				if strings.Repeat(unit, len(str)/len(unit)) != str {
					t.Errorf("reader %d: generation %d has a mixed payload %.80q", r, cp.Header.Generation, str)
					return
				}
				loads.Add(1)
			}
		})
	}
	wg.Wait()
	close(done)
	readers.Wait()

	total := writers * saves
	slices.Sort(gens)
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(gens, want) {
		t.Errorf("the saves reported generations %v, want 1..%d each once", gens, total)
	}
	st, err := s.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.Generation != uint64(total) || st.Lock != nil {
		t.Errorf("Stat = generation %d, lock %+v; want generation %d, no lock", st.Header.Generation, st.Lock, total)
	}
	t.Logf("%d conflicts, %d locked retries, %d loads", conflicts.Load(), locked.Load(), loads.Load())
}

// v1Session is the session in testdata/v1repo written by ckpt before format
// 2: generations 8 and 9 kept, 10 current (a mark).
const v1Session = "../../testdata/v1repo/nightly-xbzagqkq7f6a"

// putV1 uploads the format-1 session's objects into b.
func putV1(t *testing.T, b storage.Backend) {
	t.Helper()
	for _, name := range []string{"session", "session.8", "session.9"} {
		data, err := os.ReadFile(filepath.Join(v1Session, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Put(t.Context(), name, data); err != nil {
			t.Fatalf("put %s: %v", name, err)
		}
	}
}

// A session format 1 wrote loads, shows its steps and history, and takes
// new saves and metadata-only saves; the first writes format 2 and keeps the
// format-1 generations as history.
func testFormat1(t *testing.T, h harness) {
	b := h.New(t)
	putV1(t, b)
	s := storage.New(b)
	hd := current(t, s)
	if hd.Format != 1 || hd.Generation != 10 || hd.Title != "nightly v1 third" || !hd.HasFlag("submitted") {
		t.Fatalf("Stat of the format-1 session = %+v", hd)
	}
	if st := hd.Step("flaky"); st == nil || st.State != checkpoint.StepFailed || st.Exit != 3 || hd.Step("build") == nil || hd.Step("unit-tests") == nil {
		t.Errorf("steps = %+v", hd.Steps)
	}
	wantLoad(t, s, 10, "state-three\n")
	wantHistory := func(want []uint64, payload map[uint64]string) {
		t.Helper()
		hist, err := s.History(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var gens []uint64
		for _, g := range hist {
			gens = append(gens, g.Generation)
			if g.Err != nil {
				t.Errorf("History: generation %d: %v", g.Generation, g.Err)
			}
		}
		if !slices.Equal(gens, want) {
			t.Errorf("History = %v, want %v", gens, want)
		}
		for g, p := range payload {
			if cp, got := mustLoad(t, s, storage.AtGeneration(g)); got != p || cp.Header.Generation != g {
				t.Errorf("Load(AtGeneration(%d)) = generation %d %q, want %q", g, cp.Header.Generation, got, p)
			}
		}
	}
	wantHistory([]uint64{10, 9, 8}, map[uint64]string{9: "state-three\n", 8: "state-two\n"})
	if probs, err := s.Verify(t.Context()); err != nil || slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind != storage.ProblemPermissions }) {
		t.Errorf("Verify of the format-1 session = %+v, %v", probs, err)
	}

	// A step record: metadata only, written as format 2.
	saved, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.IfGeneration(10),
		storage.WithStep(checkpoint.Step{Name: "deploy", State: checkpoint.StepPassed, Attempts: 1, Started: time.Now().UTC()}))
	if err != nil {
		t.Fatalf("metadata-only save on format 1: %v", err)
	}
	if saved.Header.Generation != 11 || saved.Header.Payload == nil || saved.Size != int64(len("state-three\n")) {
		t.Errorf("metadata-only save = %+v, size %d", saved.Header, saved.Size)
	}
	hd = current(t, s)
	if hd.Format != checkpoint.Version || hd.Step("deploy") == nil || hd.Step("flaky") == nil || hd.Title != "nightly v1 third" {
		t.Errorf("after the step: %+v", hd)
	}
	wantLoad(t, s, 11, "state-three\n")
	wantHistory([]uint64{11, 10, 9}, map[uint64]string{10: "state-three\n", 9: "state-three\n"})

	// A second metadata-only save shares the payload object the first made.
	objs := payloads(t, b)
	if _, err := s.Save(t.Context(), nil, storage.KeepPayload(), storage.WithFlags(nil, []string{"incomplete"})); err != nil {
		t.Fatal(err)
	}
	if got := payloads(t, b); !slices.Equal(got, objs) {
		t.Errorf("payload objects %v after a metadata-only save, were %v", got, objs)
	}
	wantHistory([]uint64{12, 11, 10, 9}, nil)

	// A new payload.
	mustSave(t, s, "state-four\n", storage.Keep(4))
	wantLoad(t, s, 13, "state-four\n")
	wantHistory([]uint64{13, 12, 10, 9}, map[uint64]string{12: "state-three\n", 10: "state-three\n", 9: "state-three\n"})
	if probs, err := s.Verify(t.Context()); err != nil || slices.ContainsFunc(probs, func(p storage.Problem) bool { return p.Kind != storage.ProblemPermissions }) {
		t.Errorf("Verify after the upgrade = %+v, %v", probs, err)
	}
	if cp, err := s.Load(t.Context(), storage.AtGeneration(8)); !errors.Is(err, storage.ErrNoGeneration) {
		t.Errorf("Load(AtGeneration(8)) after it was pruned = %v, %v", cp, err)
	}
}

// Load with SpoolTo hands out the payload either way; a backend that
// downloads payloads (S3) downloads it into the caller's file, which then
// holds exactly the payload, so that ckpt load -o writes it once.
func testSpoolTo(t *testing.T, h harness) {
	s, b := initSession(t, h)
	payload := strings.Repeat("spooled payload\n", 100_000) // over S3's in-memory limit
	mustSave(t, s, payload)
	spool, err := os.CreateTemp(t.TempDir(), "spool")
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	if _, err := spool.WriteString("stale bytes that must go"); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Load(t.Context(), storage.SpoolTo(spool))
	if err != nil {
		t.Fatalf("Load(SpoolTo): %v", err)
	}
	defer cp.Close()
	got, err := io.ReadAll(cp)
	if err != nil || string(got) != payload {
		t.Fatalf("Load(SpoolTo) read %d bytes, %v; want the payload", len(got), err)
	}
	_, spooler := b.(storage.Spooler)
	if cp.Spooled != spooler {
		t.Errorf("Spooled = %v, on a backend that is a Spooler: %v", cp.Spooled, spooler)
	}
	if cp.Spooled {
		if b, err := os.ReadFile(spool.Name()); err != nil || string(b) != payload {
			t.Errorf("the spool file holds %d bytes, %v; want exactly the payload", len(b), err)
		}
	}
}
