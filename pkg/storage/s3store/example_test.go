package s3store_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// A session's backend on an S3-compatible server, used through its
// primitives as package storage uses it: lock, upload an immutable
// object, commit the manifest conditionally, release. Credentials, region
// and endpoint come from the AWS SDK's standard configuration (here
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION and
// AWS_ENDPOINT_URL_S3). The example needs a server, so it is compiled, not
// run.
func Example() {
	ctx := context.Background()
	st, err := s3store.Open(ctx, "s3://ci-bucket/ckpt", s3store.Options{UsePathStyle: true})
	if err != nil {
		log.Fatal(err)
	}
	// Refuse a server on which no lock or commit could hold.
	if err := st.CheckConditionalWrites(ctx); err != nil {
		log.Fatal(err)
	}
	b, err := st.Backend("nightly-k3j9x2mfq7ab")
	if err != nil {
		log.Fatal(err)
	}
	host, _ := os.Hostname()
	held, err := b.Lock(ctx, storage.NextFile, &checkpoint.Owner{PID: os.Getpid(), Host: host, Started: time.Now()})
	var locked *storage.LockedError
	switch {
	case errors.As(err, &locked):
		log.Fatalf("%v (stale: %v)", err, locked.Stale)
	case err != nil:
		log.Fatal(err)
	}
	defer held.Release(ctx)

	_, base, err := b.ReadHead(ctx, "session", 4096)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		log.Fatal(err)
	}
	if _, err := b.Create(ctx, "payload-k3j9", strings.NewReader(`{"step": 1}`)); err != nil {
		log.Fatal(err)
	}
	// Applied only if this writer still holds the lock and "session" is
	// still the version read.
	if err := b.Commit(ctx, held, base.Version, []byte("a manifest naming payload-k3j9")); err != nil {
		log.Fatal(err)
	}
	fmt.Println("committed")
}
