package repository_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/ckpt-dev/ckpt/pkg/repository"
)

// A CI job resumes the last incomplete nightly session, or creates one.
func ExampleRepository_Create() {
	tmp, err := os.MkdirTemp("", "ckpt-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	ctx := context.Background()

	// The path comes from --repo, $CKPT_REPOSITORY or the XDG cache
	// directory, resolved by the caller: the package reads no environment.
	repo, err := repository.Open(filepath.Join(tmp, "sessions"))
	if err != nil {
		log.Fatal(err)
	}
	s, err := repo.Create(ctx, repository.CreateOptions{
		Prefix: "Nightly", Title: "nightly 2026-11-22", Flags: []string{"incomplete"},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(s.ID(), "nightly-"), len(s.ID()) == len("nightly-")+12)

	entries, err := repo.List(ctx, repository.Filter{Prefix: "nightly", Flags: []string{"incomplete"}})
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range entries {
		fmt.Println(e.ID == s.ID(), e.Status.Header.Generation, e.Status.Header.Title)
	}
	// Output:
	// true true
	// true 0 nightly 2026-11-22
}
