// Package s3test runs versitygw (Apache-2.0), an S3 gateway over a local
// directory, for tests of code that stores sessions in S3: the tests of
// package s3store, the conformance suite of package storage, and
// end-to-end tests that run ckpt against both backends. Install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// (make tools does). Find looks for it; tests skip, saying why, when it is
// absent, unless CKPT_REQUIRE_VERSITYGW is set. Start runs it on a free
// loopback port and creates a bucket; Env returns the AWS_* variables that
// point the SDK at it, and at nothing else: no shared config file, no
// profile, no instance metadata. Shared runs one gateway for a whole test
// binary, and NewStore returns an *s3store.Store on a fresh prefix of it:
//
//	func TestSomething(t *testing.T) {
//		st := s3test.NewStore(t, s3store.Options{})
//		b, err := st.Backend("some-id")
//		...
//	}
package s3test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
)

// Version is the versitygw release the tests are written against.
const Version = "v1.8.0"

// InstallHint says how to install versitygw.
const InstallHint = "go install github.com/versity/versitygw/cmd/versitygw@" + Version

// Credentials and region of every gateway Start runs.
const (
	AccessKey = "ckpt-test-access"
	SecretKey = "ckpt-test-secret-0123456789"
	Region    = "us-east-1"
)

// Find returns the path of versitygw: $VERSITYGW, else versitygw on $PATH,
// else $(go env GOPATH)/bin/versitygw. When there is none it returns "" and
// why, with how to install it.
func Find() (path, why string) {
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
	return "", "versitygw not found in $VERSITYGW, $PATH or $(go env GOPATH)/bin; install it with: " + InstallHint
}

// Gateway is a running versitygw.
type Gateway struct {
	Endpoint string // http://127.0.0.1:PORT
	Bucket   string
	Dir      string // the directory it serves

	cmd    *exec.Cmd
	exited chan error
	log    *os.File
}

// Start runs the versitygw at bin over a new directory inside dir, on a
// free loopback port, with keep-alive connections, and creates bucket. It
// stops the gateway again if that fails.
func Start(bin, dir, bucket string) (*Gateway, error) {
	var lastErr error
	for attempt := range 3 {
		g, err := start(bin, dir, bucket, attempt)
		if err == nil {
			return g, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

func start(bin, dir, bucket string, attempt int) (*Gateway, error) {
	root := filepath.Join(dir, fmt.Sprintf("versitygw-%d", attempt))
	if err := os.Mkdir(root, 0o700); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	logf, err := os.Create(root + ".log")
	if err != nil {
		return nil, err
	}
	g := &Gateway{Endpoint: "http://" + addr, Bucket: bucket, Dir: root, log: logf, exited: make(chan error, 1)}
	g.cmd = exec.Command(bin, "--port", addr, "--access", AccessKey, "--secret", SecretKey,
		"--region", Region, "--keep-alive", "--quiet", "posix", root)
	g.cmd.Stdout, g.cmd.Stderr = logf, logf
	g.cmd.SysProcAttr = gatewayProcAttr()
	if err := g.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { g.exited <- g.cmd.Wait() }()
	if err := g.createBucket(20 * time.Second); err != nil {
		g.Stop()
		out, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("versitygw on %s did not start: %w; its output: %s", addr, err, strings.TrimSpace(string(out)))
	}
	return g, nil
}

// createBucket creates the bucket, waiting for the gateway to listen.
func (g *Gateway) createBucket(wait time.Duration) error {
	client := s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(g.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
	})
	deadline := time.Now().Add(wait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(g.Bucket)})
		cancel()
		if err == nil || strings.Contains(err.Error(), "BucketAlreadyOwnedByYou") {
			return nil
		}
		select {
		case werr := <-g.exited:
			g.exited <- werr
			return errors.Join(errors.New("versitygw exited"), werr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// URL returns the s3:// url of prefix in the gateway's bucket.
func (g *Gateway) URL(prefix string) string {
	return "s3://" + g.Bucket + "/" + strings.Trim(prefix, "/")
}

// Env returns the environment variables that point the AWS SDK at the
// gateway, with home as HOME and home/.cache as XDG_CACHE_HOME, and nowhere
// else. Apply them over an environment from which every other AWS_*
// variable is removed (see Environ).
func (g *Gateway) Env(home string) []string {
	return []string{
		"HOME=" + home,
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"AWS_CONFIG_FILE=" + filepath.Join(home, ".aws", "config"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, ".aws", "credentials"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=" + AccessKey,
		"AWS_SECRET_ACCESS_KEY=" + SecretKey,
		"AWS_REGION=" + Region,
		"AWS_ENDPOINT_URL_S3=" + g.Endpoint,
	}
}

// Environ returns env without its AWS_* variables, followed by extra.
func Environ(env []string, extra ...string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "AWS_") {
			out = append(out, kv)
		}
	}
	return append(out, extra...)
}

// Stop stops the gateway and waits for it. It leaves its directory.
func (g *Gateway) Stop() error {
	_ = g.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case err = <-g.exited:
	case <-time.After(5 * time.Second):
		_ = g.cmd.Process.Kill()
		err = <-g.exited
	}
	g.exited <- err
	g.log.Close()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed by our signal
	}
	return err
}

// Bucket is the bucket of the gateway Shared runs.
const Bucket = "ckpt-test"

// EndpointEnv names the variable through which a test binary hands its
// running gateway to a child test process: Shared uses the endpoint it
// names, with Bucket, instead of starting a gateway.
const EndpointEnv = "CKPT_S3_TEST_ENDPOINT"

// RequireEnv names the variable that, when set (as CI sets it), makes a
// missing versitygw fail the tests that need it instead of skipping them.
const RequireEnv = "CKPT_REQUIRE_VERSITYGW"

var shared struct {
	mu   sync.Mutex
	gw   *Gateway
	dir  string
	skip string // why there is none
	err  error
}

// Shared returns the gateway of this test binary, starting it at the first
// call, over a temporary directory, with Bucket created. Without versitygw
// it skips t, saying why, unless RequireEnv is set, when it fails t. A
// TestMain may call StopShared after m.Run to stop it at once and remove
// its directory; otherwise it dies with the test binary.
func Shared(t testing.TB) *Gateway {
	t.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.gw == nil && shared.skip == "" && shared.err == nil {
		startShared()
	}
	switch {
	case shared.err != nil:
		t.Fatal(shared.err)
	case shared.skip != "" && os.Getenv(RequireEnv) != "":
		t.Fatalf("%s is set: %s", RequireEnv, shared.skip)
	case shared.skip != "":
		t.Skip("S3 tests skipped: " + shared.skip)
	}
	return shared.gw
}

func startShared() {
	if ep := os.Getenv(EndpointEnv); ep != "" {
		shared.gw = &Gateway{Endpoint: ep, Bucket: Bucket}
		return
	}
	bin, why := Find()
	if bin == "" {
		shared.skip = why
		return
	}
	dir, err := os.MkdirTemp("", "ckpt-s3test-")
	if err != nil {
		shared.err = err
		return
	}
	gw, err := Start(bin, dir, Bucket)
	if err != nil {
		os.RemoveAll(dir)
		shared.err = err
		return
	}
	shared.gw, shared.dir = gw, dir
}

// StopShared stops the gateway Shared started, if any, and removes its
// directory.
func StopShared() {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.gw != nil && shared.gw.cmd != nil {
		_ = shared.gw.Stop()
		os.RemoveAll(shared.dir)
	}
	shared.gw, shared.dir = nil, ""
}

// StoreOptions returns o set to reach g: its endpoint, path-style
// addressing, its region and credentials, and a short lease
// (LeaseDuration 2s, StaleGrace 1s) unless o sets one, so that tests of
// stale locks wait seconds.
func (g *Gateway) StoreOptions(o s3store.Options) s3store.Options {
	o.Endpoint, o.UsePathStyle, o.Region = g.Endpoint, true, Region
	o.Credentials = credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, "")
	if o.LeaseDuration == 0 {
		o.LeaseDuration = 2 * time.Second
	}
	if o.StaleGrace == 0 {
		o.StaleGrace = time.Second
	}
	return o
}

var prefixes atomic.Int64

// NewStore returns a store on a fresh prefix of the bucket of the Shared
// gateway, with options o as StoreOptions completes them, and checked with
// CheckConditionalWrites. It skips t as Shared does. The store takes its
// endpoint and credentials from o, never from the environment.
func NewStore(t testing.TB, o s3store.Options) *s3store.Store {
	t.Helper()
	g := Shared(t)
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r - 'A' + 'a'
		}
		return '-'
	}, t.Name())
	prefix := fmt.Sprintf("%.60s-%d-%d", name, os.Getpid(), prefixes.Add(1))
	st, err := s3store.Open(context.Background(), g.URL(prefix), g.StoreOptions(o))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CheckConditionalWrites(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}
