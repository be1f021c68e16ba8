package s3store_test

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store"
	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// TestPathStyle checks how requests address the bucket: path-style when
// an endpoint is configured, from whichever source the SDK takes it, and
// virtual-hosted on AWS, unless Options.PathStyle says otherwise. The
// endpoint is a made-up host name, not an IP address (with which the SDK
// addresses every bucket path-style): the HTTP client records where each
// request was addressed and sends the ones for that host to the gateway.
func TestPathStyle(t *testing.T) {
	const (
		endpoint = "http://s3.ckpt.test:9000"
		host     = "s3.ckpt.test:9000"
		bucket   = s3test.Bucket
	)
	for _, tc := range []struct {
		name   string
		env    map[string]string
		config string // the shared config file
		o      s3store.Options
		// wantHost is the host every request names; with wantPath the
		// path starts with the bucket.
		wantHost string
		wantPath bool
	}{
		{name: "endpoint_url in the profile", config: "[default]\nendpoint_url = " + endpoint + "\n",
			wantHost: host, wantPath: true},
		{name: "services section", config: "[default]\nservices = local\n\n[services local]\ns3 =\n  endpoint_url = " + endpoint + "\n",
			wantHost: host, wantPath: true},
		{name: "AWS_ENDPOINT_URL_S3", env: map[string]string{"AWS_ENDPOINT_URL_S3": endpoint},
			wantHost: host, wantPath: true},
		{name: "AWS_ENDPOINT_URL", env: map[string]string{"AWS_ENDPOINT_URL": endpoint},
			wantHost: host, wantPath: true},
		{name: "Options.Endpoint", o: s3store.Options{Endpoint: endpoint},
			wantHost: host, wantPath: true},
		{name: "AWS", wantHost: bucket + ".s3.us-east-1.amazonaws.com"},
		{name: "configured endpoints ignored", config: "[default]\nendpoint_url = " + endpoint + "\n",
			env:      map[string]string{"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
			wantHost: bucket + ".s3.us-east-1.amazonaws.com"},
		{name: "PathStyleOff", config: "[default]\nendpoint_url = " + endpoint + "\n", o: s3store.Options{PathStyle: s3store.PathStyleOff},
			wantHost: bucket + "." + host},
		{name: "PathStyleOn on AWS", o: s3store.Options{PathStyle: s3store.PathStyleOn},
			wantHost: "s3.us-east-1.amazonaws.com", wantPath: true},
		{name: "UsePathStyle on AWS", o: s3store.Options{UsePathStyle: true},
			wantHost: "s3.us-east-1.amazonaws.com", wantPath: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			config := filepath.Join(t.TempDir(), "config")
			if err := os.WriteFile(config, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_CONFIG_FILE", config)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			rec := &recorder{forHost: host}
			// Only requests that reach the gateway can succeed.
			works := tc.wantHost == host && tc.wantPath
			if works {
				rec.to = strings.TrimPrefix(s3test.Shared(t).Endpoint, "http://")
			}
			o := tc.o
			o.Region, o.HTTPClient, o.MaxAttempts = "us-east-1", rec, 1
			o.Credentials = credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, "")
			st, err := s3store.Open(t.Context(), "s3://"+bucket+"/"+strings.ReplaceAll(t.Name(), "/", "-"), o)
			if err != nil {
				t.Fatal(err)
			}
			err = st.CheckConditionalWrites(t.Context())
			if works && err != nil {
				t.Errorf("check: %v", err)
			}
			if !works && !errors.Is(err, errNotSent) {
				t.Errorf("check: %v, want the recorder's refusal", err)
			}
			reqs := rec.requests()
			if len(reqs) == 0 {
				t.Fatal("no requests")
			}
			for _, r := range reqs {
				pathStyle := r.path == "/"+bucket || strings.HasPrefix(r.path, "/"+bucket+"/")
				if r.host != tc.wantHost || pathStyle != tc.wantPath {
					t.Fatalf("request to host %s, path %s; want host %s, path-style %v", r.host, r.path, tc.wantHost, tc.wantPath)
				}
			}
		})
	}
}

var errNotSent = errors.New("the recorder sends nothing there")

// recorder is an HTTP client that records where each request is
// addressed, and sends those for host forHost to the address to, with
// their Host header (which they are signed with) unchanged.
type recorder struct {
	forHost, to string

	mu   sync.Mutex
	reqs []recorded
}

type recorded struct{ host, path string }

func (r *recorder) Do(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, recorded{req.URL.Host, req.URL.Path})
	r.mu.Unlock()
	if r.to == "" || req.URL.Host != r.forHost {
		return nil, errNotSent
	}
	out := req.Clone(req.Context())
	out.Host = req.URL.Host
	out.URL.Host = r.to
	return http.DefaultTransport.RoundTrip(out)
}

func (r *recorder) requests() []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recorded(nil), r.reqs...)
}

func TestPathStyleContradiction(t *testing.T) {
	_, err := s3store.Open(t.Context(), "s3://bucket", s3store.Options{UsePathStyle: true, PathStyle: s3store.PathStyleOff})
	if err == nil || !strings.Contains(err.Error(), "UsePathStyle contradicts PathStyleOff") {
		t.Errorf("UsePathStyle with PathStyleOff: %v", err)
	}
}
