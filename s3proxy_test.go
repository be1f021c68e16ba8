package main

import (
	"cmp"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage/s3store/s3test"
)

// s3Proxy is a reverse proxy on 127.0.0.1 in front of an S3 server. It
// records every request it forwards (what kind, on which object, when it
// came and when its response ended) and can hold each one for a fixed delay
// before forwarding it: a stand-in for a server that far away. It keeps the
// Host header the client signed, so signatures still verify.
type s3Proxy struct {
	URL string

	delay atomic.Int64 // nanoseconds added to each request
	rp    *httputil.ReverseProxy

	mu   sync.Mutex
	reqs []s3Request
}

// s3Request is one request the proxy forwarded.
type s3Request struct {
	Op         string // GET, GET-range, HEAD, PUT, LIST, UploadPart, ...
	Object     string // session, session.next, session.N, payload, log, marker, ...
	Cond       string // If-Match, If-None-Match, or ""
	Status     int
	Start, End time.Time
}

func (r s3Request) label() string {
	l := r.Op
	if r.Object != "" {
		l += " " + r.Object
	}
	if r.Cond != "" {
		l += " " + r.Cond
	}
	if r.Status >= 300 {
		l += fmt.Sprintf(" →%d", r.Status)
	}
	return l
}

// newS3Proxy starts a proxy in front of the server at target, stopped when
// tb ends.
func newS3Proxy(tb testing.TB, target string) *s3Proxy {
	tb.Helper()
	u, err := url.Parse(target)
	if err != nil {
		tb.Fatal(err)
	}
	p := &s3Proxy{}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = u.Scheme, u.Host
			// The Host header stays the proxy's: the client signed it.
			pr.Out.Host = pr.In.Host
		},
		Transport: &http.Transport{
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     time.Minute,
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(p)
	tb.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// setDelay sets how long the proxy holds each request before forwarding it.
func (p *s3Proxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

// take returns the requests recorded since the last take, and forgets them.
func (p *s3Proxy) take() []s3Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.reqs
	p.reqs = nil
	return out
}

func (p *s3Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := s3Request{Start: time.Now()}
	rec.Op, rec.Object, rec.Cond = s3test.Classify(r)
	if d := time.Duration(p.delay.Load()); d > 0 {
		time.Sleep(d)
	}
	sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.rp.ServeHTTP(sw, r)
	rec.Status, rec.End = sw.status, time.Now()
	p.mu.Lock()
	p.reqs = append(p.reqs, rec)
	p.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// reqStats sums the requests of a number of runs of one operation.
type reqStats struct {
	runs   int
	total  int
	method map[string]int // GET, PUT, HEAD, POST, DELETE, LIST
	label  map[string]int // label() → count
	chain  int            // sum over runs of the longest chain of sequential requests
}

func (s *reqStats) add(reqs []s3Request) {
	if s.method == nil {
		s.method, s.label = map[string]int{}, map[string]int{}
	}
	s.runs++
	s.total += len(reqs)
	for _, r := range reqs {
		s.method[methodOf(r.Op)]++
		s.label[r.label()]++
	}
}

// addChain adds the longest chain of requests of one run that did not
// overlap: each started after the one before it had ended. With a delay
// on every request, that is how many round trips the run waited for one
// after the other.
func (s *reqStats) addChain(reqs []s3Request) { s.chain += sequential(reqs) }

func sequential(reqs []s3Request) int {
	rs := slices.Clone(reqs)
	slices.SortFunc(rs, func(a, b s3Request) int { return a.End.Compare(b.End) })
	n := 0
	var last time.Time
	for _, r := range rs {
		if !r.Start.Before(last) {
			n++
			last = r.End
		}
	}
	return n
}

func methodOf(op string) string {
	switch op {
	case "GET", "GET-range", "ListParts":
		return "GET"
	case "LIST", "ListMultipartUploads":
		return "LIST"
	case "PUT", "UploadPart", "UploadPartCopy", "CopyObject":
		return "PUT"
	case "CreateMultipartUpload", "CompleteMultipartUpload", "DeleteObjects":
		return "POST"
	case "DELETE", "AbortMultipartUpload":
		return "DELETE"
	}
	return op
}

// report adds requests/op and one metric per method to b's result.
func (s *reqStats) report(b *testing.B) {
	if s.runs == 0 {
		return
	}
	n := float64(s.runs)
	b.ReportMetric(float64(s.total)/n, "requests/op")
	for _, m := range []string{"GET", "HEAD", "LIST", "PUT", "POST", "DELETE"} {
		if c := s.method[m]; c > 0 {
			b.ReportMetric(float64(c)/n, m+"/op")
		}
	}
}

// breakdown says what the requests of one run were, most frequent first:
// "2×GET session, 1×PUT session If-Match".
func (s *reqStats) breakdown() string {
	type lc struct {
		l string
		c int
	}
	var ls []lc
	for l, c := range s.label {
		ls = append(ls, lc{l, c})
	}
	slices.SortFunc(ls, func(a, b lc) int { return cmp.Or(cmp.Compare(b.c, a.c), cmp.Compare(a.l, b.l)) })
	var parts []string
	for _, x := range ls {
		parts = append(parts, fmt.Sprintf("%.3g×%s", float64(x.c)/float64(s.runs), x.l))
	}
	return strings.Join(parts, ", ")
}

// startGateway runs a versitygw of its own for tb over tb's temporary
// directory, or skips tb (fails it with CKPT_REQUIRE_VERSITYGW set) when
// there is none.
func startGateway(tb testing.TB) *s3test.Gateway {
	tb.Helper()
	bin, why := s3test.Find()
	if bin == "" {
		if os.Getenv(s3test.RequireEnv) != "" {
			tb.Fatal(why)
		}
		tb.Skip(why)
	}
	gw, err := s3test.Start(bin, tb.TempDir(), "ckpt-bench")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = gw.Stop() })
	return gw
}

// sdkClient is a bare AWS SDK client of the server at endpoint, with the
// gateway's credentials.
func sdkClient(endpoint string) *s3.Client {
	return s3.New(s3.Options{
		Region:       s3test.Region,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s3test.AccessKey, s3test.SecretKey, ""),
	})
}

// s3Ref is an S3 repository as ckpt processes reach it: through the proxy,
// or straight at the gateway.
func s3Ref(tb testing.TB, gw *s3test.Gateway, endpoint, prefix string) repoRef {
	env := append(gw.Env(tb.TempDir()), "AWS_ENDPOINT_URL_S3="+endpoint, "PATH="+os.Getenv("PATH"))
	return repoRef{loc: gw.URL(prefix), env: env}
}
