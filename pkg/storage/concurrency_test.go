package storage_test

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Writers that compare-and-swap with IfGeneration never lose an update, and
// readers never block and never see a partial checkpoint.
func TestConcurrentSaves(t *testing.T) {
	const (
		writers = 8
		saves   = 20
	)
	d := newSession(t)

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		gens      []uint64 // every generation a Save reported
		conflicts atomic.Int64
		locked    atomic.Int64
		loads     atomic.Int64
		done      = make(chan struct{})
	)

	for w := range writers {
		wg.Go(func() {
			for i := range saves {
				payload := fmt.Sprintf("writer %d save %d|", w, i)
				payload = strings.Repeat(payload, 1+(w*saves+i)%50)
				for {
					st, err := d.Stat(t.Context())
					if err != nil {
						t.Errorf("writer %d: Stat: %v", w, err)
						return
					}
					saved, err := d.Save(t.Context(), strings.NewReader(payload), storage.IfGeneration(st.Header.Generation))
					var le *storage.LockedError
					switch {
					case err == nil:
						mu.Lock()
						gens = append(gens, saved.Header.Generation)
						mu.Unlock()
					case errors.Is(err, storage.ErrConflict):
						conflicts.Add(1)
						continue
					case errors.As(err, &le):
						locked.Add(1)
						runtime.Gosched()
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
				cp, err := d.Load(t.Context())
				var ce *checkpoint.CorruptError
				switch {
				case errors.As(err, &ce):
					t.Errorf("reader %d: Load saw a corrupt checkpoint: %v", r, err)
					return
				case errors.Is(err, storage.ErrNoCheckpoint):
					continue // before the first save
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
				s := string(b)
				unit := s[:strings.IndexByte(s, '|')+1]
				if strings.Repeat(unit, len(s)/len(unit)) != s {
					t.Errorf("reader %d: generation %d has a mixed payload %.80q", r, cp.Header.Generation, s)
					return
				}
				loads.Add(1)
			}
		})
	}

	wg.Wait()
	close(done)
	readers.Wait()

	const total = writers * saves
	slices.Sort(gens)
	want := make([]uint64, total)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	if !slices.Equal(gens, want) {
		t.Errorf("the saves reported generations %v, want 1..%d each once", gens, total)
	}
	st, err := d.Stat(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Header.Generation != total || st.Lock != nil {
		t.Errorf("Stat = generation %d, lock %+v; want generation %d, no lock", st.Header.Generation, st.Lock, total)
	}
	wantNoNext(t, d)
	t.Logf("%d conflicts, %d locked retries, %d loads", conflicts.Load(), locked.Load(), loads.Load())
}
