package s3store

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3/s3test"
)

// The S3 tests run against versitygw (Apache-2.0), an S3 gateway over a
// local directory, which TestMain starts on a free loopback port (see
// package s3test):
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// It is found through $VERSITYGW, then $PATH, then $(go env GOPATH)/bin;
// without it the tests that need it are skipped, saying so, unless
// CKPT_REQUIRE_VERSITYGW is set (CI), when the run fails. The tests never
// read the real AWS configuration: TestMain points HOME, AWS_CONFIG_FILE and
// AWS_SHARED_CREDENTIALS_FILE into a temporary directory and sets the
// AWS_* variables to the gateway's.

const (
	testAccess = s3test.AccessKey
	testSecret = s3test.SecretKey
	testBucket = "ckpt-test"
	// endpointEnv passes a running gateway to a child test process.
	endpointEnv = "CKPT_S3_TEST_ENDPOINT"
)

var (
	gwEndpoint string // the gateway's url; "" when the S3 tests are skipped
	gwSkip     string // why they are
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "ckpt-s3-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	home := filepath.Join(tmp, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}

	endpoint := os.Getenv(endpointEnv) // set in a child: its parent runs the gateway
	if endpoint == "" {
		bin, why := s3test.Find()
		if bin == "" && os.Getenv("CKPT_REQUIRE_VERSITYGW") != "" {
			fmt.Fprintf(os.Stderr, "pkg/storage/s3: CKPT_REQUIRE_VERSITYGW is set: %s\n", why)
			return 1
		}
		if bin == "" {
			gwSkip = why
			fmt.Fprintf(os.Stderr, "pkg/storage/s3: skipping the S3 tests: %s\n", why)
			setEnv(s3test.Environ(os.Environ(), (&s3test.Gateway{}).Env(home)...))
			return m.Run()
		}
		g, err := s3test.Start(bin, tmp, testBucket)
		if err != nil {
			fmt.Fprintf(os.Stderr, "pkg/storage/s3: %v\n", err)
			return 1
		}
		defer g.Stop()
		endpoint = g.Endpoint
	}
	gwEndpoint = endpoint
	setEnv(s3test.Environ(os.Environ(), (&s3test.Gateway{Endpoint: endpoint}).Env(home)...))
	return m.Run()
}

// setEnv makes env the process's environment: the tests never see the real
// AWS configuration, credentials or HOME.
func setEnv(env []string) {
	os.Clearenv()
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
}

// needGateway skips t unless versitygw runs.
func needGateway(t testing.TB) {
	t.Helper()
	if gwEndpoint == "" {
		t.Skip("S3 tests skipped: " + gwSkip)
	}
}

// testOptions are the options of every test store: a short lease, so that
// tests of stale leases wait seconds, not minutes.
func testOptions() Options {
	return Options{UsePathStyle: true, LeaseDuration: 2 * time.Second, StaleGrace: time.Second}
}

// newStore returns a store under a prefix of its own in the test bucket,
// checked for conditional writes.
func newStore(t testing.TB, o Options) *Store {
	t.Helper()
	needGateway(t)
	prefix := strings.NewReplacer("/", "-", "#", "-").Replace(strings.ToLower(t.Name())) + "-" + randomToken()[:8]
	st, err := Open(context.Background(), "s3://"+testBucket+"/"+prefix, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckConditionalWrites(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
