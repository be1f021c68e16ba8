package storage_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// A damaged metadata-only manifest (a step, a mark) falls back to the
// generation before it, which shares its payload: the last acknowledged
// save stays loadable, and the next commit keeps it.
func TestDamagedStepManifestKeepsLastSave(t *testing.T) {
	ctx := context.Background()
	s, _ := newSession(t)
	mustSave(t, s, "one")
	mustSave(t, s, "two") // acknowledged: generation 2
	if _, err := s.Save(ctx, nil, storage.KeepPayload(), storage.WithFlags([]string{"submitted"}, nil)); err != nil {
		t.Fatal(err) // a mark: generation 3 shares "two"
	}
	b := s.Backend()
	data, _, err := b.ReadHead(ctx, storage.CheckpointFile, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Clone(data)
	data[20] ^= 0x10 // one bit flipped in a 300-byte manifest
	if err := b.Put(ctx, storage.CheckpointFile, data); err != nil {
		t.Fatal(err)
	}
	cp, got := mustLoad(t, s)
	if got != "two" {
		t.Errorf("Load after a damaged mark = generation %d %q; want the last save's payload %q (intact on disk)", cp.Header.Generation, got, "two")
	}
	// The next save builds on generation 1 and reuses generation number 2:
	// "load --generation 2" now returns other bytes than the acknowledged
	// generation 2, and "two" is in no manifest (gc deletes its payload).
	mustSave(t, s, "three")
	for _, g := range []uint64{1, 2, 3} {
		cp, err := s.Load(ctx, storage.AtGeneration(g))
		if err != nil {
			continue
		}
		if got, _ := readAllClose(cp); got == "two" {
			return
		}
	}
	t.Errorf("after the next save no generation holds %q: the acknowledged save is lost", "two")
}
