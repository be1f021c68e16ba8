package s3store

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// The S3 tests run against versitygw (Apache-2.0), an S3 gateway over a
// local directory, started by TestMain on a free loopback port:
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// It is found through $VERSITYGW, then $PATH, then $(go env GOPATH)/bin;
// without it the tests that need it are skipped, saying so. The tests never
// read the real AWS configuration: TestMain points HOME, AWS_CONFIG_FILE and
// AWS_SHARED_CREDENTIALS_FILE into a temporary directory and sets the
// AWS_* variables to the gateway's.

const (
	testAccess = "ckpt-test-access"
	testSecret = "ckpt-test-secret-0123456789"
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
	isolateEnv(tmp)

	if ep := os.Getenv(endpointEnv); ep != "" {
		gwEndpoint = ep // a child: its parent runs the gateway
		os.Setenv("AWS_ENDPOINT_URL_S3", ep)
		return m.Run()
	}
	bin, why := findVersitygw()
	if bin == "" {
		gwSkip = why
		fmt.Fprintf(os.Stderr, "pkg/storage/s3: skipping the S3 tests: %s\n", why)
		return m.Run()
	}
	stop, err := startGateway(bin, tmp)
	if err != nil {
		fmt.Fprintf(os.Stderr, "pkg/storage/s3: %v\n", err)
		return 1
	}
	defer stop()
	return m.Run()
}

// isolateEnv keeps the SDK away from the real configuration and credentials.
func isolateEnv(tmp string) {
	home := filepath.Join(tmp, "home")
	_ = os.Mkdir(home, 0o700)
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") {
			os.Unsetenv(k)
		}
	}
	os.Setenv("HOME", home)
	os.Setenv("AWS_CONFIG_FILE", filepath.Join(home, "aws-config"))
	os.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(home, "aws-credentials"))
	os.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	os.Setenv("AWS_ACCESS_KEY_ID", testAccess)
	os.Setenv("AWS_SECRET_ACCESS_KEY", testSecret)
	os.Setenv("AWS_REGION", "us-east-1")
}

func findVersitygw() (string, string) {
	if p := os.Getenv("VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Sprintf("$VERSITYGW=%s: %v", p, err)
		}
		return p, ""
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, ""
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for _, dir := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(dir, "bin", "versitygw")
			if _, err := os.Stat(p); err == nil {
				return p, ""
			}
		}
	}
	return "", "versitygw not found in $VERSITYGW, $PATH or $(go env GOPATH)/bin; install it with: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"
}

// startGateway runs versitygw on a free loopback port over a fresh
// directory, creates the test bucket, and returns the function that stops
// it.
func startGateway(bin, tmp string) (func(), error) {
	var lastErr error
	for attempt := range 3 {
		root := filepath.Join(tmp, fmt.Sprintf("gw%d", attempt))
		if err := os.Mkdir(root, 0o700); err != nil {
			return nil, err
		}
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		logPath := filepath.Join(tmp, fmt.Sprintf("gw%d.log", attempt))
		logf, err := os.Create(logPath)
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "--port", addr, "--access", testAccess, "--secret", testSecret,
			"--region", "us-east-1", "--keep-alive", "--quiet", "posix", root)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY_ID=", "ROOT_SECRET_ACCESS_KEY=")
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			logf.Close()
			return nil, fmt.Errorf("start %s: %w", bin, err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		stop := func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logf.Close()
		}
		endpoint := "http://" + addr
		if err := waitReady(endpoint, exited); err != nil {
			stop()
			log, _ := os.ReadFile(logPath)
			lastErr = fmt.Errorf("versitygw on %s did not start: %v\n%s", addr, err, log)
			continue
		}
		gwEndpoint = endpoint
		os.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
		return stop, nil
	}
	return nil, lastErr
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady waits until the gateway creates the test bucket.
func waitReady(endpoint string, exited <-chan error) error {
	st, err := Open(context.Background(), "s3://"+testBucket, Options{UsePathStyle: true, Endpoint: endpoint, MaxAttempts: 1})
	if err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = st.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(testBucket)})
		cancel()
		if err == nil || apiCode(err) == "BucketAlreadyOwnedByYou" {
			return nil
		}
		select {
		case werr := <-exited:
			return errors.Join(errors.New("versitygw exited"), werr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
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
