package s3store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
)

// Defaults for Options.
const (
	DefaultLeaseDuration = 30 * time.Second
	DefaultStaleGrace    = 2 * time.Second
	DefaultPartSize      = 8 << 20
	DefaultConcurrency   = 4
	DefaultMaxAttempts   = 6
	DefaultMaxBackoff    = 5 * time.Second
	DefaultListPageSize  = 1000
	// MinPartSize is S3's least size of a multipart upload's part, the last
	// one excepted.
	MinPartSize = 5 << 20
	// maxParts is S3's limit on the parts of one multipart upload.
	maxParts = 10000
)

// PathStyle chooses how requests name the bucket: in the path,
// ENDPOINT/BUCKET/KEY, as MinIO, versitygw and most other S3-compatible
// servers need, or in the host name, BUCKET.ENDPOINT/KEY, as AWS S3
// prefers.
type PathStyle int

const (
	// PathStyleAuto, the default, addresses buckets path-style when an
	// endpoint is configured, from whatever source the SDK takes it
	// (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, endpoint_url in the shared
	// config file's profile or in its services section) or from
	// Options.Endpoint: that is a server other than AWS's. Without one,
	// requests go to AWS S3, virtual-hosted.
	PathStyleAuto PathStyle = iota
	// PathStyleOn always addresses buckets path-style.
	PathStyleOn
	// PathStyleOff never does, whatever the endpoint.
	PathStyleOff
)

// Options configure a Store. The zero value works with AWS S3, and with
// another server that the SDK's configuration names as the endpoint.
type Options struct {
	// PathStyle chooses path-style or virtual-hosted addressing; by
	// default path-style exactly when an endpoint is configured.
	PathStyle PathStyle
	// UsePathStyle, if true, is PathStyle: PathStyleOn.
	UsePathStyle bool
	// Endpoint, if set, overrides the endpoint that the SDK's configuration
	// names (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the shared config file).
	Endpoint string
	// Region, if set, overrides the region that the SDK's configuration
	// names (AWS_REGION, the shared config file); "us-east-1" if neither
	// names one.
	Region string
	// LeaseDuration is how long a writer's lease lasts unless renewed. A
	// writer renews it every third of that; a lease not renewed for
	// LeaseDuration+StaleGrace is stale. Default DefaultLeaseDuration.
	LeaseDuration time.Duration
	// StaleGrace is how long past its expiry a lease must be to be judged
	// stale. It covers the one-second resolution of HTTP dates and, where
	// the server sends no Date header, the skew between this machine's clock
	// and the writer's. At least one second; default DefaultStaleGrace.
	StaleGrace time.Duration
	// PartSize is the size of a multipart upload's parts, and the largest
	// object Create stores with one PutObject. At least MinPartSize;
	// default DefaultPartSize. An object can be at most 10,000 parts long.
	PartSize int64
	// Concurrency is how many parts upload at once. Create holds at most
	// Concurrency+1 parts in memory. Default DefaultConcurrency.
	Concurrency int
	// TempDir is where Open spools objects larger than a small buffer;
	// default os.TempDir(). The file is unlinked at once.
	TempDir string
	// MaxAttempts is how many times the SDK tries a request that fails with
	// a transient error (a network error, 5xx, 503 SlowDown), with jittered
	// exponential backoff up to MaxBackoff. Defaults: the SDK's
	// configuration (AWS_MAX_ATTEMPTS, max_attempts in the shared config
	// file), else DefaultMaxAttempts; DefaultMaxBackoff.
	MaxAttempts int
	MaxBackoff  time.Duration
	// ListPageSize is how many keys a list request asks for; default 1000,
	// S3's maximum.
	ListPageSize int32
	// CheckCacheDir, if set, is a local directory where a process records
	// that the server behind this store passed CheckConditionalWrites, so
	// that later processes on this machine skip even the request that reads
	// the marker in the bucket. Files are named after the endpoint, bucket
	// and prefix.
	CheckCacheDir string
	// Credentials, if set, sign the requests instead of the credentials
	// the SDK's configuration names.
	Credentials aws.CredentialsProvider
	// HTTPClient, if set, sends the requests. By default a client bounds
	// connecting (10s) and waiting for response headers (60s), but not the
	// transfer of a body.
	HTTPClient s3.HTTPClient
	// Warn, if set, receives the warnings the AWS SDK logs (such as
	// "falling back to IMDSv1"), each once, as one line starting "aws sdk:
	// ", and a line starting "s3: " before each retry of a request that got
	// no answer in time; never from two goroutines at once. Without it they
	// are dropped, as is the SDK's debug output always: the package never
	// prints.
	Warn func(msg string)
}

func (o *Options) defaults() error {
	if o.LeaseDuration == 0 {
		o.LeaseDuration = DefaultLeaseDuration
	}
	if o.StaleGrace == 0 {
		o.StaleGrace = DefaultStaleGrace
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
	switch {
	case o.LeaseDuration < time.Second:
		return fmt.Errorf("lease duration %s is shorter than a second", o.LeaseDuration)
	case o.StaleGrace < time.Second:
		return fmt.Errorf("stale grace %s is shorter than a second, the resolution of HTTP dates", o.StaleGrace)
	case o.PartSize < MinPartSize:
		return fmt.Errorf("part size %d is below S3's minimum of %d", o.PartSize, MinPartSize)
	case o.Concurrency < 1, o.MaxAttempts < 0, o.ListPageSize < 1 || o.ListPageSize > 1000:
		return errors.New("concurrency, attempts and list page size must be positive, the page size at most 1000")
	case o.PathStyle < PathStyleAuto || o.PathStyle > PathStyleOff:
		return fmt.Errorf("path style %d is none of auto, on and off", o.PathStyle)
	case o.UsePathStyle && o.PathStyle == PathStyleOff:
		return errors.New("UsePathStyle contradicts PathStyleOff")
	}
	return nil
}

// Store is a prefix of an S3 bucket that holds sessions: each session is
// the objects under PREFIX/ID/, reached through its Backend. It is safe for
// concurrent use.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	o      Options
	// endpoint names the server, for CheckCacheDir.
	endpoint string

	condDelete bool // DELETE honours If-Match; set by CheckConditionalWrites
	checkMu    sync.Mutex
	checked    bool

	// Test hooks.
	noRenew       bool  // writers never renew their lease
	testCopyLimit int64 // copy objects larger than this in parts
}

// copyLimit is the largest object one CopyObject copies: 5 GiB on S3.
func (st *Store) copyLimit() int64 {
	if st.testCopyLimit > 0 {
		return st.testCopyLimit
	}
	return 5 << 30
}

// copyPartSize is the size of the parts of a multipart copy.
func (st *Store) copyPartSize() int64 {
	if st.testCopyLimit > 0 {
		return MinPartSize
	}
	return 1 << 30
}

// Open returns the store at url, "s3://BUCKET" or "s3://BUCKET/PREFIX",
// configured as the AWS SDK's standard configuration says (AWS_*
// environment variables, the shared config and credentials files) with o
// on top. It sends no request: CheckConditionalWrites is the first.
func Open(ctx context.Context, url string, o Options) (*Store, error) {
	bucket, prefix, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	if err := o.defaults(); err != nil {
		return nil, fmt.Errorf("s3 store %s: %w", url, err)
	}
	warn := serialized(o.Warn)
	logger := sdkLogger(warn)
	opts := []func(*config.LoadOptions) error{
		// Before anything is built from the configuration: the credential
		// providers (the instance metadata client among them) keep the
		// logger they are given.
		config.WithLogger(logger),
		config.WithClientLogMode(0),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	var httpClient s3.HTTPClient = defaultHTTPClient()
	if o.HTTPClient != nil {
		httpClient = o.HTTPClient
	}
	opts = append(opts, config.WithHTTPClient(httpClient))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: load AWS configuration: %w", url, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = cfg.RetryMaxAttempts
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	// The retryer is set here, not with config.WithRetryer, so that the
	// configuration's max_attempts is read; and RetryMaxAttempts is
	// cleared so that the client does not wrap the retryer again.
	cfg.RetryMaxAttempts = 0
	cfg.Retryer = func() aws.Retryer {
		std := retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = o.MaxAttempts
			so.MaxBackoff = o.MaxBackoff
			// The client-side retry quota would turn a burst of throttling
			// into instant failures; the attempts and the backoff bound
			// retries instead.
			so.RateLimiter = ratelimit.None
			// A failed TLS handshake fails the same way a second later, as
			// a name that does not resolve does (which the SDK knows).
			so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
				if isTLS(err) {
					return aws.FalseTernary
				}
				return aws.UnknownTernary
			})}, so.Retryables...)
		})
		if warn == nil {
			return std
		}
		return slowRetryer{RetryerV2: std, warn: warn}
	}
	cfg.Logger, cfg.ClientLogMode = logger, 0
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.DisableLogOutputChecksumValidationSkipped = true
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		// so.BaseEndpoint is the endpoint the SDK resolved from every
		// source, the services section of the shared config file included
		// (it is not in cfg.BaseEndpoint), with o.Endpoint on top.
		so.UsePathStyle = o.pathStyle(so.BaseEndpoint != nil)
	})
	return &Store{client: client, bucket: bucket, prefix: prefix, o: o, condDelete: true,
		endpoint: aws.ToString(client.Options().BaseEndpoint) + " " + client.Options().Region}, nil
}

// pathStyle reports whether to address buckets path-style, given whether
// an endpoint is configured.
func (o *Options) pathStyle(endpoint bool) bool {
	switch {
	case o.UsePathStyle, o.PathStyle == PathStyleOn:
		return true
	case o.PathStyle == PathStyleOff:
		return false
	}
	return endpoint
}

// defaultHTTPClient bounds connecting and waiting for response headers, so
// that a hung server fails a request (which is then retried) rather than
// hanging it; a body may take as long as it needs.
func defaultHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) {
		d.Timeout = 10 * time.Second
	}).WithTransportOptions(func(t *http.Transport) {
		t.ResponseHeaderTimeout = 60 * time.Second
		t.MaxIdleConnsPerHost = 32
	})
}

// ParseURL splits "s3://BUCKET/PREFIX" into the bucket and the key prefix,
// "" or ending in "/".
func ParseURL(url string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(url, "s3://")
	if !ok {
		return "", "", fmt.Errorf("%q is not an s3:// url", url)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%q names no bucket", url)
	}
	prefix = strings.Trim(prefix, "/")
	for _, part := range strings.Split(prefix, "/") {
		if part == "." || part == ".." || (prefix != "" && part == "") {
			return "", "", fmt.Errorf("%q: prefix %q has an empty, '.' or '..' component", url, prefix)
		}
	}
	if prefix != "" {
		prefix += "/"
	}
	return bucket, prefix, nil
}

// IsURL reports whether s names an S3 store rather than a directory.
func IsURL(s string) bool { return strings.HasPrefix(s, "s3://") }

// Root returns the store's url, s3://BUCKET or s3://BUCKET/PREFIX.
func (st *Store) Root() string {
	return "s3://" + st.bucket + "/" + strings.TrimSuffix(st.prefix, "/")
}

// Bucket returns the store's bucket.
func (st *Store) Bucket() string { return st.bucket }

// Client returns the S3 client the store uses.
func (st *Store) Client() *s3.Client { return st.client }

func (st *Store) url(key string) string { return "s3://" + st.bucket + "/" + key }

func validID(id string) error {
	if id == "" || id[0] == '.' || !checkpoint.ValidName(id) {
		return fmt.Errorf("%w %q", ErrInvalidID, id)
	}
	return nil
}

// Backend returns the backend of session id, the objects under
// PREFIX/ID/. It sends no request: the session need not exist.
func (st *Store) Backend(id string) (*Backend, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	return &Backend{st: st, id: id, dir: st.prefix + id + "/"}, nil
}

// tempFile creates a spool file in Options.TempDir, already unlinked, so
// that it goes when it is closed, whatever happens.
func (st *Store) tempFile() (*os.File, error) {
	f, err := os.CreateTemp(st.o.TempDir, "ckpt-s3-*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
