package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/ckpt-dev/ckpt/pkg/storage"
	s3store "github.com/ckpt-dev/ckpt/pkg/storage/s3"
)

// A store on an S3-compatible server: credentials, region and endpoint come
// from the AWS SDK's standard configuration (here AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY, AWS_REGION and AWS_ENDPOINT_URL_S3). The example
// needs a server, so it is compiled, not run.
func Example() {
	ctx := context.Background()
	st, err := s3store.Open(ctx, "s3://ci-bucket/ckpt", s3store.Options{UsePathStyle: true})
	if err != nil {
		log.Fatal(err)
	}
	// Refuse a server on which no lock could hold.
	if err := st.CheckConditionalWrites(ctx); err != nil {
		log.Fatal(err)
	}
	s, err := st.Create(ctx, "nightly-k3j9x2mfq7ab", storage.WithTitle("nightly"))
	if err != nil {
		log.Fatal(err)
	}
	saved, err := s.Save(ctx, strings.NewReader(`{"step": 1}`), storage.IfGeneration(0))
	var locked *storage.LockedError
	switch {
	case errors.As(err, &locked):
		log.Fatalf("%v (stale: %v)", err, locked.Stale)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("saved generation", saved.Header.Generation)

	cp, err := s.Load(ctx) // verified before the first byte
	if err != nil {
		log.Fatal(err)
	}
	defer cp.Close()
	payload, _ := io.ReadAll(cp)
	fmt.Printf("%s\n", payload)
}
