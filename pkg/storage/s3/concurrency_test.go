package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Writers that compare-and-swap with IfGeneration never lose an update, and
// readers never see a partial checkpoint. Each writer has a Store of its
// own, with its own HTTP client, as separate processes would.
func TestConcurrentSaves(t *testing.T) {
	t.Parallel()
	const (
		writers = 6
		saves   = 8
	)
	st := newStore(t, testOptions())
	s := newSession(t, st)

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		gens      []uint64
		conflicts atomic.Int64
		locked    atomic.Int64
		loads     atomic.Int64
		done      = make(chan struct{})
	)
	for w := range writers {
		ws, err := newStoreAt(t, st).OpenSession(t.Context(), s.id)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			waiter := &storage.Waiter{Max: 30 * time.Second}
			for i := range saves {
				payload := strings.Repeat(fmt.Sprintf("writer %d save %d|", w, i), 1+(w*saves+i)%50)
				for {
					var saved *storage.Saved
					err := waiter.Do(t.Context(), func() error {
						st, err := ws.Stat(t.Context())
						if err != nil {
							return err
						}
						saved, err = ws.Save(t.Context(), strings.NewReader(payload), storage.IfGeneration(st.Header.Generation))
						var le *storage.LockedError
						if errors.As(err, &le) {
							locked.Add(1)
						}
						return err
					})
					switch {
					case err == nil:
						mu.Lock()
						gens = append(gens, saved.Header.Generation)
						mu.Unlock()
					case errors.Is(err, storage.ErrConflict):
						conflicts.Add(1)
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
	readers.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			cp, err := s.Load(t.Context())
			var ce *checkpoint.CorruptError
			switch {
			case errors.As(err, &ce):
				t.Errorf("reader: Load saw a corrupt checkpoint: %v", err)
				return
			case errors.Is(err, storage.ErrNoCheckpoint):
				continue
			case err != nil:
				t.Errorf("reader: Load: %v", err)
				return
			}
			b, err := io.ReadAll(cp)
			cp.Close()
			if err != nil || int64(len(b)) != cp.Size || len(cp.Skipped) != 0 {
				t.Errorf("reader: read %d of %d bytes, %v, skipped %v", len(b), cp.Size, err, cp.Skipped)
				return
			}
			str := string(b)
			unit := str[:strings.IndexByte(str, '|')+1]
			if strings.Repeat(unit, len(str)/len(unit)) != str {
				t.Errorf("reader: generation %d has a mixed payload %.80q", cp.Header.Generation, str)
				return
			}
			loads.Add(1)
		}
	})
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
	stat, err := s.Stat(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if stat.Header.Generation != total || stat.Lock != nil {
		t.Errorf("Stat = generation %d, lock %+v; want generation %d, no lock", stat.Header.Generation, stat.Lock, total)
	}
	t.Logf("%d conflicts, %d locked retries, %d loads", conflicts.Load(), locked.Load(), loads.Load())
}
