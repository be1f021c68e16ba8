package storage_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// A test runner creates a session, saves its state after a step, and a later
// run opens the session again and resumes from the last checkpoint.
func ExampleOpen() {
	repo, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	dir := filepath.Join(repo, "nightly-example")
	if err := os.Mkdir(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// The first run: generation 0 holds the metadata, generation 1 the state.
	d, err := storage.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	s, err := storage.Init(ctx, d, storage.WithTitle("nightly run"), storage.WithFlags([]string{"incomplete"}, nil))
	if err != nil {
		log.Fatal(err)
	}
	saved, err := s.Save(ctx, strings.NewReader(`{"passed":["build"]}`), storage.IfGeneration(0))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("saved generation", saved.Header.Generation)

	// A later run, perhaps after a reboot, resumes.
	s, err = storage.Open(dir)
	if err != nil {
		log.Fatal(err)
	}
	cp, err := s.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cp.Close()
	state, err := io.ReadAll(cp)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("generation %d of %q %v: %s\n", cp.Header.Generation, cp.Header.Title, cp.Header.Flags, state)
	// Output:
	// saved generation 1
	// generation 1 of "nightly run" [incomplete]: {"passed":["build"]}
}

// IfGeneration turns a save into a compare-and-swap, so that of two writers
// that read the same generation only one can build on it.
func ExampleIfGeneration() {
	repo, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	dir := filepath.Join(repo, "cas-example")
	if err := os.Mkdir(dir, 0o700); err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	d, err := storage.OpenDir(dir)
	if err != nil {
		log.Fatal(err)
	}
	s, err := storage.Init(ctx, d)
	if err != nil {
		log.Fatal(err)
	}

	for _, who := range []string{"first", "second"} {
		_, err := s.Save(ctx, strings.NewReader(who), storage.IfGeneration(0))
		switch {
		case errors.Is(err, storage.ErrConflict):
			fmt.Println(who, "lost: reload and retry")
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Println(who, "saved")
		}
	}
	// Output:
	// first saved
	// second lost: reload and retry
}
