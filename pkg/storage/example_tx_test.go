package storage_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Run makes a read-modify-write atomic: the lock is held from the read to
// the commit, and a Waiter waits up to its Max for other writers instead of
// failing at once.
func ExampleSession_Run() {
	repo, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	dir := filepath.Join(repo, "counter")
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
	increment := func(ctx context.Context, tx *storage.Tx) error {
		n := 0
		if tx.Base().Generation > 0 {
			cp, err := tx.Load(ctx)
			if err != nil {
				return err
			}
			defer cp.Close()
			b, err := io.ReadAll(cp)
			if err != nil {
				return err
			}
			if n, err = strconv.Atoi(string(b)); err != nil {
				return err
			}
		}
		_, err := tx.Commit(ctx, strings.NewReader(strconv.Itoa(n+1)))
		return err
	}
	w := &storage.Waiter{Max: 10 * time.Second}
	for range 3 {
		if err := w.Do(ctx, func() error {
			_, err := s.Run(ctx, increment)
			return err
		}); err != nil {
			log.Fatal(err)
		}
	}
	cp, err := s.Load(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer cp.Close()
	b, _ := io.ReadAll(cp)
	fmt.Printf("generation %d, counter %s\n", cp.Header.Generation, b)
	// Output: generation 3, counter 3
}

// Lock returns the function that releases the lock, for a defer. Another
// writer of this process waits until the lock is released; one of another
// process fails with a *LockedError (wrap it in a Waiter to wait).
func ExampleSession_Lock() {
	repo, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(repo)
	dir := filepath.Join(repo, "locked")
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
	tx, unlock, err := s.Lock(ctx, storage.WithTitle("exclusive"))
	if err != nil {
		log.Fatal(err)
	}
	defer unlock()
	other := make(chan *storage.Saved)
	go func() {
		saved, err := s.Save(ctx, strings.NewReader("meanwhile"))
		if err != nil {
			log.Fatal(err)
		}
		other <- saved
	}()
	saved, err := tx.Commit(ctx, strings.NewReader("mine"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed generation", saved.Header.Generation, saved.Header.Title)
	fmt.Println("then the other writer saved generation", (<-other).Header.Generation)
	// Output:
	// committed generation 1 exclusive
	// then the other writer saved generation 2
}
