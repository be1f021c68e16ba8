package storage_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// localHarness runs the conformance suite on the local backend: a session
// directory under t.TempDir().
var localHarness = harness{
	New: func(t *testing.T) storage.Backend { return newLocal(t) },
	// A writer that died leaves session.next with its owner record and no
	// flock: it is made here by a lock whose file is kept (a hard link)
	// while its writer lets go, then put back.
	Stale: func(t *testing.T, b storage.Backend) {
		t.Helper()
		d := unwrapBackend(b).(*storage.Dir)
		held, err := d.Lock(t.Context(), storage.NextFile, storage.CurrentOwner("crashed writer", time.Now()))
		if err != nil {
			t.Fatal(err)
		}
		next := filepath.Join(d.Path(), storage.NextFile)
		keep := filepath.Join(t.TempDir(), "next")
		if err := os.Link(next, keep); err != nil {
			t.Fatal(err)
		}
		if err := held.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(keep, next); err != nil {
			t.Fatal(err)
		}
	},
}

func TestConformanceLocal(t *testing.T) {
	runConformance(t, localHarness)
}

// The suite through an unarmed fault-injecting wrapper: the wrapper itself
// is transparent, so that TestFaultsLocal's findings are the protocol's.
func TestConformanceLocalWrapped(t *testing.T) {
	runConformance(t, wrapped(localHarness))
}

func TestFaultsLocal(t *testing.T) {
	runFaults(t, localHarness)
}

func TestLinearizableLocal(t *testing.T) {
	runLinearizable(t, localHarness, 6, 40)
}
