package s3store_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// fakeS3 is a tiny S3 server, path-style, for what versitygw cannot be made
// to do: ignore or half-honour conditional headers, throttle, or reject
// credentials. It keeps objects in memory and knows just the requests
// CheckConditionalWrites sends.
type fakeS3 struct {
	honorPut, honorComplete, honorDelete bool
	// applyRefused makes a refused PUT store its body all the same.
	applyRefused bool
	// ifMatchMissing makes a PUT with If-Match on a missing key succeed.
	ifMatchMissing bool
	// failFirst makes the first requests fail with failStatus and failCode.
	failFirst  int64
	failStatus int
	failCode   string

	requests atomic.Int64
	mu       sync.Mutex
	objs     map[string][]byte
}

func newFake(t *testing.T, f *fakeS3) string {
	f.objs = map[string][]byte{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return srv.URL
}

func etagOf(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

func s3Error(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>fake %s</Message><RequestId>fake</RequestId></Error>`, code, code)
}

// conditionFails reports whether If-Match or If-None-Match fails on key.
func (f *fakeS3) conditionFails(r *http.Request, key string) bool {
	cur, ok := f.objs[key]
	if r.Header.Get("If-None-Match") == "*" && ok {
		return true
	}
	m := r.Header.Get("If-Match")
	switch {
	case m == "":
		return false
	case !ok:
		return !f.ifMatchMissing
	}
	return strings.Trim(m, `"`) != strings.Trim(etagOf(cur), `"`)
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.requests.Add(1)
	body, _ := io.ReadAll(r.Body)
	if n <= f.failFirst {
		s3Error(w, f.failStatus, f.failCode)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	switch {
	case key == "" && r.Method == http.MethodHead:
		w.WriteHeader(http.StatusOK)
	case r.Method == http.MethodHead, r.Method == http.MethodGet && key != "":
		obj, ok := f.objs[key]
		if !ok {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusNotFound)
			} else {
				s3Error(w, http.StatusNotFound, "NoSuchKey")
			}
			return
		}
		w.Header().Set("ETag", etagOf(obj))
		w.Header().Set("Content-Length", fmt.Sprint(len(obj)))
		if r.Method == http.MethodGet {
			w.Write(obj)
		}
	case r.Method == http.MethodPut && q.Has("partNumber"):
		w.Header().Set("ETag", `"part"`)
	case r.Method == http.MethodPut:
		if f.honorPut && f.conditionFails(r, key) {
			if f.applyRefused {
				f.objs[key] = body
			}
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		f.objs[key] = body
		w.Header().Set("ETag", etagOf(body))
	case r.Method == http.MethodPost && q.Has("uploads"):
		fmt.Fprintf(w, `<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><UploadId>up1</UploadId></InitiateMultipartUploadResult>`, bucket, key)
	case r.Method == http.MethodPost && q.Has("uploadId"):
		if f.honorComplete && f.conditionFails(r, key) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		obj := []byte(fmt.Sprintf("multipart %d", n))
		f.objs[key] = obj
		fmt.Fprintf(w, `<CompleteMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key><ETag>%s</ETag></CompleteMultipartUploadResult>`, bucket, key, etagOf(obj))
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodDelete:
		if f.honorDelete && f.conditionFails(r, key) {
			s3Error(w, http.StatusPreconditionFailed, "PreconditionFailed")
			return
		}
		delete(f.objs, key)
		w.WriteHeader(http.StatusNoContent)
	default:
		s3Error(w, http.StatusNotImplemented, "NotImplemented")
	}
}
