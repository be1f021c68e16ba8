package s3test

import (
	"net/http"
	"path"
	"strings"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Classify names an S3 request (path-style), for the proxies tests put in
// front of the gateway to count or fail requests: its operation
// (GET-range for a ranged GET, the S3 API's name for multipart and batch
// requests, else the HTTP method; LIST for a listing), the kind of object
// it is about (session, session.next, session.N, payload, log, marker,
// probe, other; "" for requests on the bucket) and its condition header
// (If-Match, If-None-Match or "").
func Classify(r *http.Request) (op, object, cond string) {
	q := r.URL.Query()
	copySrc := r.Header.Get("X-Amz-Copy-Source") != ""
	switch {
	case r.Method == http.MethodGet && q.Has("uploads"):
		op = "ListMultipartUploads"
	case r.Method == http.MethodGet && q.Has("uploadId"):
		op = "ListParts"
	case r.Method == http.MethodGet && (q.Has("list-type") || strings.Count(strings.Trim(r.URL.Path, "/"), "/") == 0):
		op = "LIST"
	case r.Method == http.MethodGet && r.Header.Get("Range") != "":
		op = "GET-range"
	case r.Method == http.MethodPut && q.Has("partNumber") && copySrc:
		op = "UploadPartCopy"
	case r.Method == http.MethodPut && q.Has("partNumber"):
		op = "UploadPart"
	case r.Method == http.MethodPut && copySrc:
		op = "CopyObject"
	case r.Method == http.MethodPost && q.Has("uploads"):
		op = "CreateMultipartUpload"
	case r.Method == http.MethodPost && q.Has("uploadId"):
		op = "CompleteMultipartUpload"
	case r.Method == http.MethodPost && q.Has("delete"):
		op = "DeleteObjects"
	case r.Method == http.MethodDelete && q.Has("uploadId"):
		op = "AbortMultipartUpload"
	default:
		op = r.Method
	}
	switch {
	case r.Header.Get("If-Match") != "":
		cond = "If-Match"
	case r.Header.Get("If-None-Match") != "":
		cond = "If-None-Match"
	}
	if op == "LIST" || op == "ListMultipartUploads" || op == "DeleteObjects" {
		return op, "", cond
	}
	key := strings.Trim(r.URL.Path, "/")
	base := path.Base(key)
	switch {
	case strings.Contains(key, "/"+storage.LogDir+"/"):
		object = "log"
	case base == storage.CheckpointFile || base == storage.NextFile:
		object = base
	case strings.HasPrefix(base, storage.CheckpointFile+"."):
		object = "session.N"
	case strings.HasPrefix(base, storage.PayloadPrefix):
		object = "payload"
	case base == ".ckpt-checked":
		object = "marker"
	case strings.HasPrefix(base, ".ckpt-probe-"):
		object = "probe"
	default:
		object = "other"
	}
	return op, object, cond
}
