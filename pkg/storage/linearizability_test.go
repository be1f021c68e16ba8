package storage_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// A session is a register with compare-and-swap: its state is the current
// generation and payload; a save with IfGeneration(g) is CAS(g → g+1), a
// metadata-only one keeps the payload; a load reads both. The checker
// (porcupine) confirms that every recorded history of concurrent clients is
// linearizable: no lost update, no stale read after an acknowledged save.

type regState struct {
	gen   uint64
	value string
	none  bool // no checkpoint to load (generation 0, or metadata only since)
}

type regInput struct {
	load   bool
	expect uint64 // for a save: IfGeneration
	keep   bool   // a metadata-only save
	value  string // for a save: the payload
}

type regOutput struct {
	ok       bool // a save: committed; a load: read something
	conflict bool // a save: refused with ErrConflict
	gen      uint64
	value    string
	none     bool // a load: ErrNoCheckpoint
}

var registerModel = porcupine.Model{
	Init: func() any { return regState{none: true} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(regState), input.(regInput), output.(regOutput)
		switch {
		case in.load && out.none:
			return st.none, st
		case in.load:
			return !st.none && st.gen == out.gen && st.value == out.value, st
		case out.conflict:
			return st.gen != in.expect, st
		case st.gen != in.expect || out.gen != in.expect+1:
			return false, st
		case in.keep:
			return true, regState{gen: st.gen + 1, value: st.value, none: st.none}
		default:
			return true, regState{gen: st.gen + 1, value: in.value}
		}
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(regInput), output.(regOutput)
		switch {
		case in.load && out.none:
			return "load() → none"
		case in.load:
			return fmt.Sprintf("load() → %d %q", out.gen, out.value)
		case out.conflict:
			return fmt.Sprintf("save(if %d, keep %v, %q) → conflict", in.expect, in.keep, in.value)
		}
		return fmt.Sprintf("save(if %d, keep %v, %q) → %d", in.expect, in.keep, in.value, out.gen)
	},
	DescribeState: func(state any) string {
		st := state.(regState)
		return fmt.Sprintf("%d %q none=%v", st.gen, st.value, st.none)
	},
}

// runLinearizable runs clients concurrent clients doing ops operations
// each, CAS saves (some metadata-only) and loads, on one session, and
// checks the history.
func runLinearizable(t *testing.T, h harness, clients, ops int) {
	s, _ := initSession(t, h)
	start := time.Now()
	now := func() int64 { return time.Since(start).Nanoseconds() }
	var (
		mu      sync.Mutex
		history []porcupine.Operation
		wg      sync.WaitGroup
	)
	record := func(client int, in regInput, call int64, out regOutput) {
		mu.Lock()
		defer mu.Unlock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: now()})
	}
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), uint64(start.UnixNano())))
			var known uint64 // the generation this client last saw
			for i := 0; i < ops; i++ {
				if rng.IntN(2) == 0 {
					in := regInput{load: true}
					call := now()
					cp, err := s.Load(t.Context())
					var out regOutput
					switch {
					case errors.Is(err, storage.ErrNoCheckpoint):
						out.none = true
					case err != nil:
						t.Errorf("client %d: Load: %v", c, err)
						return
					default:
						b, err := io.ReadAll(cp)
						cp.Close()
						if err != nil || len(cp.Skipped) != 0 {
							t.Errorf("client %d: Load: %v, skipped %v", c, err, cp.Skipped)
							return
						}
						out = regOutput{ok: true, gen: cp.Header.Generation, value: string(b)}
						known = out.gen
					}
					record(c, in, call, out)
					continue
				}
				in := regInput{expect: known, keep: rng.IntN(4) == 0, value: fmt.Sprintf("client %d op %d", c, i)}
				if rng.IntN(4) == 0 {
					in.expect += uint64(rng.IntN(2)) // now and then a guess
				}
				opts := []storage.SaveOption{storage.IfGeneration(in.expect)}
				var payload io.Reader = strings.NewReader(in.value)
				if in.keep {
					opts = append(opts, storage.KeepPayload())
					payload = nil
				}
				call := now()
				saved, err := s.Save(t.Context(), payload, opts...)
				var le *storage.LockedError
				switch {
				case err == nil:
					record(c, in, call, regOutput{ok: true, gen: saved.Header.Generation})
					known = saved.Header.Generation
				case errors.Is(err, storage.ErrConflict):
					record(c, in, call, regOutput{conflict: true})
					known++ // guess: someone saved
				case errors.As(err, &le) && !le.Stale && !le.Lost:
					// Refused before it took the lock: it changed
					// nothing and is no operation on the register.
					time.Sleep(time.Duration(rng.IntN(500)) * time.Microsecond)
				default:
					t.Errorf("client %d: Save: %v", c, err)
					return
				}
			}
		})
	}
	wg.Wait()
	saves := 0
	for _, op := range history {
		if in := op.Input.(regInput); !in.load && op.Output.(regOutput).ok {
			saves++
		}
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, time.Minute)
	t.Logf("%d operations recorded, %d committed saves: %v", len(history), saves, res)
	switch res {
	case porcupine.Illegal:
		path := filepath.Join(t.TempDir(), "history.html")
		if f, err := os.Create(path); err == nil {
			_ = porcupine.Visualize(registerModel, info, f)
			f.Close()
		}
		t.Errorf("the history is not linearizable (visualization: %s)", path)
	case porcupine.Unknown:
		t.Errorf("the checker timed out")
	}
	if saves == 0 {
		t.Errorf("no save committed: the test checked nothing")
	}
}
