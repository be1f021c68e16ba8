package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// wrapped returns h with every backend wrapped in an unarmed faultBackend.
func wrapped(h harness) harness {
	inner := h.New
	h.New = func(t *testing.T) storage.Backend { return newFaultBackend(inner(t)) }
	return h
}

// faultScenario is a save to fail: setup makes the session, save is the
// save under test, old and new are the payloads before and after.
type faultScenario struct {
	name  string
	setup func(t *testing.T, s *storage.Session, b storage.Backend)
	save  func(ctx context.Context, s *storage.Session) (*storage.Saved, error)
	old   string
	new   string
}

var faultPayload = strings.Repeat("new state ", 40000) // several writes

func faultScenarios() []faultScenario {
	threeSaves := func(t *testing.T, s *storage.Session, b storage.Backend) {
		if _, err := storage.Init(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 3; i++ {
			mustSave(t, s, fmt.Sprint("generation ", i), storage.Keep(2))
		}
	}
	v1 := func(t *testing.T, _ *storage.Session, b storage.Backend) { putV1(t, b) }
	save := func(ctx context.Context, s *storage.Session) (*storage.Saved, error) {
		return s.Save(ctx, strings.NewReader(faultPayload), storage.Keep(2))
	}
	mark := func(ctx context.Context, s *storage.Session) (*storage.Saved, error) {
		return s.Save(ctx, nil, storage.KeepPayload(), storage.WithFlags([]string{"marked"}, nil), storage.Keep(2))
	}
	return []faultScenario{
		{"save", threeSaves, save, "generation 3", faultPayload},
		{"metadata", threeSaves, mark, "generation 3", "generation 3"},
		{"format1-save", v1, save, "state-three\n", faultPayload},
		{"format1-metadata", v1, mark, "state-three\n", "state-three\n"},
	}
}

// runFaults fails each primitive a save calls, each call in turn, with
// each of faultErrors, and, for writes, with a lost response (applied, then
// failed). It checks that a save that returns success is current, that a
// failed one leaves the old checkpoint or the new one, intact, never a torn
// one, that the history is intact, that no lock is left, and that the next
// save works.
func runFaults(t *testing.T, h harness) {
	for _, sc := range faultScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			// Count the primitives of a clean save.
			f := newFaultBackend(h.New(t))
			s := storage.New(f)
			sc.setup(t, s, f)
			f.arm("", 0, nil, false)
			if _, err := sc.save(t.Context(), s); err != nil {
				t.Fatal(err)
			}
			_, calls := f.disarm()
			t.Logf("a %s calls %v", sc.name, calls)
			for _, op := range slices.Sorted(maps.Keys(calls)) {
				for n := 1; n <= calls[op]; n++ {
					for _, ferr := range faultErrors {
						for _, lost := range []bool{false, true} {
							if lost && (!faultWriteOps[op] || ferr != faultErrors[0]) {
								continue
							}
							// A lock let go of is gone, whatever its
							// release says: only its answer can fail.
							if op == "Release" && !lost {
								continue
							}
							name := fmt.Sprintf("%s-%d-%v", op, n, ferr)
							if lost {
								name = fmt.Sprintf("%s-%d-lost-response", op, n)
							}
							t.Run(name, func(t *testing.T) { faultCase(t, h, sc, op, n, ferr, lost) })
						}
					}
				}
			}
		})
	}
}

func faultCase(t *testing.T, h harness, sc faultScenario, op string, n int, ferr error, lost bool) {
	f := newFaultBackend(h.New(t))
	s := storage.New(f)
	sc.setup(t, s, f)
	before := current(t, s).Generation
	f.arm(op, n, ferr, lost)
	saved, err := sc.save(t.Context(), s)
	fired, _ := f.disarm()
	if !fired {
		t.Skipf("this save made fewer than %d calls of %s", n, op)
	}
	if err != nil && !errors.Is(err, ferr) {
		t.Errorf("save with %s failing: error %v, want it to wrap %v", op, err, ferr)
	}
	cp, err2 := s.Load(t.Context(), storage.Strict())
	if err2 != nil {
		t.Fatalf("TORN: after the save (error %v), a strict Load fails: %v", err, err2)
	}
	got, rerr := readAllClose(cp)
	if rerr != nil {
		t.Fatalf("reading the checkpoint: %v", rerr)
	}
	gen := cp.Header.Generation
	isOld := gen == before && got == sc.old
	isNew := gen == before+1 && got == sc.new
	switch {
	case !isOld && !isNew:
		t.Errorf("TORN: after the save (error %v) the checkpoint is generation %d %.30q; want generation %d %.30q or %d %.30q",
			err, gen, got, before, sc.old, before+1, sc.new)
	case err == nil && !isNew:
		t.Errorf("LOST: the save returned generation %d, but the checkpoint is generation %d", saved.Header.Generation, gen)
	}
	hist, herr := s.History(t.Context())
	if herr != nil {
		t.Errorf("History: %v", herr)
	}
	for _, g := range hist {
		if g.Err != nil {
			t.Errorf("History: generation %d is damaged: %v", g.Generation, g.Err)
		}
	}
	wantNoLock(t, s)
	next, err := s.Save(t.Context(), io.MultiReader(strings.NewReader("after")), storage.Keep(2))
	if err != nil {
		t.Fatalf("the save after a failed one: %v", err)
	}
	wantLoad(t, s, next.Header.Generation, "after")
}
