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
	"github.com/aws/smithy-go/logging"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
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

// Options configure a Store. The zero value works with AWS S3; most other
// S3-compatible servers need UsePathStyle.
type Options struct {
	// UsePathStyle addresses objects as ENDPOINT/BUCKET/KEY instead of
	// BUCKET.ENDPOINT/KEY, as MinIO, versitygw and most other S3-compatible
	// servers need.
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
	// checkpoint saved with one PutObject and loaded in memory; larger ones
	// are spooled to a temporary file. At least MinPartSize; default
	// DefaultPartSize. A checkpoint can be at most 10,000 parts long.
	PartSize int64
	// Concurrency is how many parts upload at once. A save holds at most
	// Concurrency+1 parts in memory. Default DefaultConcurrency.
	Concurrency int
	// TempDir is where checkpoints larger than PartSize are spooled while
	// they are verified; default os.TempDir(). The file is unlinked at once.
	TempDir string
	// MaxAttempts is how many times the SDK tries a request that fails with
	// a transient error (a network error, 5xx, 503 SlowDown), with jittered
	// exponential backoff up to MaxBackoff. Defaults DefaultMaxAttempts and
	// DefaultMaxBackoff.
	MaxAttempts int
	MaxBackoff  time.Duration
	// ListPageSize is how many keys a list request asks for; default 1000,
	// S3's maximum.
	ListPageSize int32
	// HTTPClient, if set, sends the requests. By default a client bounds
	// connecting (10s) and waiting for response headers (60s), but not the
	// transfer of a body.
	HTTPClient s3.HTTPClient
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
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
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
	case o.Concurrency < 1, o.MaxAttempts < 1, o.ListPageSize < 1 || o.ListPageSize > 1000:
		return errors.New("concurrency, attempts and list page size must be positive, the page size at most 1000")
	}
	return nil
}

// Store is a repository of sessions under a prefix of an S3 bucket: each
// session is the objects under PREFIX/ID/. It is safe for concurrent use.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or ending in "/"
	o      Options

	condDelete bool // DELETE honours If-Match; set by CheckConditionalWrites
	checkMu    sync.Mutex
	checked    bool

	// Test hooks.
	noRenew       bool         // writers never renew their lease
	beforeFinal   func(string) // called with the session id before the final write
	testCopyLimit int64        // copy objects larger than this in parts
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
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	var httpClient s3.HTTPClient = defaultHTTPClient()
	if o.HTTPClient != nil {
		httpClient = o.HTTPClient
	}
	opts = append(opts,
		config.WithHTTPClient(httpClient),
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = o.MaxAttempts
				so.MaxBackoff = o.MaxBackoff
				// The client-side retry quota would turn a burst of
				// throttling into instant failures; the attempts and the
				// backoff bound retries instead.
				so.RateLimiter = ratelimit.None
			})
		}))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store %s: load AWS configuration: %w", url, err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	// A package never prints: the SDK logs nothing.
	cfg.Logger = logging.Nop{}
	cfg.ClientLogMode = 0
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		so.DisableLogOutputChecksumValidationSkipped = true
		so.UsePathStyle = o.UsePathStyle
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
	})
	return &Store{client: client, bucket: bucket, prefix: prefix, o: o, condDelete: true}, nil
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

func (st *Store) session(id string) *Session {
	return &Session{st: st, id: id, dir: st.prefix + id + "/"}
}

// Open returns the session id. It fails with storage.ErrNotFound if no
// object of it exists.
func (st *Store) Open(ctx context.Context, id string) (storage.Session, error) {
	s, err := st.OpenSession(ctx, id)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// OpenSession is Open returning the concrete type, which also has Lock and
// Run.
func (st *Store) OpenSession(ctx context.Context, id string) (*Session, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	s := st.session(id)
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Create claims id and writes its generation 0, a checkpoint with the
// metadata opts ask for and no payload. The claim is the lease taken with
// If-None-Match and the checkpoint written with If-None-Match, so of two
// processes creating the same id one fails, with ErrExist.
func (st *Store) Create(ctx context.Context, id string, opts ...storage.SaveOption) (storage.Session, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	s := st.session(id)
	c := storage.NewSaveConfig(opts)
	c.Init = true
	tx, err := s.begin(ctx, c)
	if err != nil {
		return nil, err
	}
	if _, err := tx.Commit(ctx, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// List returns the id of every session in the store, in lexical order,
// paging through as many as there are. Names starting with '.' are left
// out. A session being created or removed may be listed; its Open or Stat
// says what state it is in.
func (st *Store) List(ctx context.Context) ([]string, error) {
	var ids []string
	p := s3.NewListObjectsV2Paginator(st.client, &s3.ListObjectsV2Input{
		Bucket:    &st.bucket,
		Prefix:    aws.String(st.prefix),
		Delimiter: aws.String("/"),
		MaxKeys:   aws.Int32(st.o.ListPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, st.requestError("list", st.prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			id := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), st.prefix), "/")
			if id != "" && !strings.HasPrefix(id, ".") {
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}

func (st *Store) tempFile() (*os.File, error) {
	f, err := os.CreateTemp(st.o.TempDir, "ckpt-s3-load-*")
	if err != nil {
		return nil, err
	}
	// Unlinked at once: the file goes when it is closed, whatever happens.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
