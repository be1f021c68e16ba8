package s3store_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// The S3 tests run against versitygw (Apache-2.0), an S3 gateway over a
// local directory, which s3test.Shared starts on a free loopback port for
// the whole test binary. Without it they are skipped, saying so, unless
// CKPT_REQUIRE_VERSITYGW is set (CI), when they fail. TestMain keeps the
// tests away from the real AWS configuration: HOME, AWS_CONFIG_FILE and
// AWS_SHARED_CREDENTIALS_FILE point into a temporary directory, and the
// other AWS_* variables are removed (stores get their endpoint and
// credentials from s3test.NewStore's options).
func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	home, err := os.MkdirTemp("", "ckpt-s3-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	env := os.Environ()
	os.Clearenv()
	for _, kv := range s3test.Environ(env, "HOME="+home,
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_EC2_METADATA_DISABLED=true") {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	defer s3test.StopShared()
	return m.Run()
}
