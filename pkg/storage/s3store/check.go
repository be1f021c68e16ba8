package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/google/renameio/v2"
)

// ProbePrefix starts the name of the object CheckConditionalWrites writes,
// and deletes, under the store's prefix. It is not a session: List skips
// names starting with '.'.
const ProbePrefix = ".ckpt-probe-"

// CheckedMarker names the object, under the store's prefix, that records a
// successful CheckConditionalWrites, so that later processes need one
// request instead of a dozen. Delete it to make the next process check the
// server again.
const CheckedMarker = ".ckpt-checked"

type checkedRecord struct {
	// Version is the checkVersion of the check that passed: a marker of an
	// older check, which checked less, is checked again.
	Version           int       `json:"version"`
	Checked           time.Time `json:"checked"`
	ConditionalDelete bool      `json:"conditional_delete"`
}

// checkVersion changes whenever CheckConditionalWrites checks more.
const checkVersion = 2

// badETag is an ETag no object has.
const badETag = `"00000000000000000000000000000000"`

// CheckConditionalWrites checks that the bucket exists, that the
// credentials may write to it, and that the server enforces the
// conditional writes every lock and commit of this package rests on: a
// PutObject with If-None-Match: * over an existing object, or with an
// If-Match the object does not have (or on a missing object), is refused
// and changes nothing; one with the object's own ETag succeeds; a
// CompleteMultipartUpload with If-None-Match: * over an existing object is
// refused. It writes, and deletes, probe objects under the store's prefix.
// It refuses a server that breaks any of these with an *Error wrapping
// ErrNoConditionalWrites. It also finds out whether DELETE honours
// If-Match; if not, releasing or breaking a lock checks the lease's ETag
// just before deleting it instead, which leaves a window of one request.
//
// Call it once before using a store; once it has succeeded it returns nil
// at once. A successful check is recorded in the object CheckedMarker, so
// that the next process costs one GET.
func (st *Store) CheckConditionalWrites(ctx context.Context) error {
	st.checkMu.Lock()
	defer st.checkMu.Unlock()
	if st.checked {
		return nil
	}
	switch ok, err := st.readChecked(ctx); {
	case ok:
		return nil
	case err != nil:
		// The server cannot be reached: the requests below would only
		// fail the same way, each after its retries.
		return err
	}
	if _, err := st.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &st.bucket}); err != nil {
		e := st.requestError("check", "", err).(*Error)
		if isNotFound(err) || httpStatus(err) == 404 {
			e.Reason, e.Kind = "no such bucket", ErrNoBucket
		}
		if httpStatus(err) == 403 && e.Kind == nil {
			e.Reason, e.Kind = "access denied (or the credentials are wrong or have expired)", ErrAccess
		}
		return e
	}
	key := st.prefix + ProbePrefix + randomToken()
	missing := key + "-missing"
	defer func() {
		// Even when ctx is done: leave no probe behind.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		for _, k := range []string{key, missing} {
			_, _ = st.client.DeleteObject(dctx, &s3.DeleteObjectInput{Bucket: &st.bucket, Key: &k})
		}
	}()
	p := probe{st: st, ctx: ctx, key: &key}

	etag, err := p.put("1", "", "*")
	if err != nil {
		return p.refuseOr(err, "it refused If-None-Match: * on PutObject of a new object")
	}
	if err := p.mustFail(p.put1("2", "", "*"), "it ignored If-None-Match: * on PutObject over an existing object"); err != nil {
		return err
	}
	if err := p.mustFail(p.put1("3", badETag, ""), "it ignored If-Match on PutObject with an ETag the object does not have"); err != nil {
		return err
	}
	if err := p.unchanged(etag); err != nil {
		return err
	}
	if _, err = p.put("4", etag, ""); err != nil {
		return p.refuseOr(err, "it refused If-Match on PutObject with the object's own ETag")
	}
	pm := probe{st: st, ctx: ctx, key: &missing}
	if err := pm.mustFail(pm.put1("5", badETag, ""), "it ignored If-Match on PutObject of a missing object"); err != nil {
		return err
	}
	if err := p.multipart(); err != nil {
		return err
	}
	st.condDelete, err = p.conditionalDelete()
	if err != nil {
		return err
	}
	st.checked = true
	st.writeChecked(ctx)
	return nil
}

// readChecked reports whether an earlier process recorded a successful
// check, and takes over its findings.
func (st *Store) readChecked(ctx context.Context) (bool, error) {
	if b, err := os.ReadFile(st.cacheFile()); err == nil && st.adoptChecked(bytes.NewReader(b)) {
		return true, nil
	}
	key := st.prefix + CheckedMarker
	out, err := st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &st.bucket, Key: &key})
	if err != nil {
		if unreachable(err) {
			return false, st.requestError("check", "", err)
		}
		return false, nil
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 4096))
	if err != nil || !st.adoptChecked(bytes.NewReader(b)) {
		return false, nil
	}
	st.cacheChecked(b)
	return true, nil
}

// adoptChecked takes over the findings of a check recorded in r.
func (st *Store) adoptChecked(r io.Reader) bool {
	var rec checkedRecord
	if err := json.NewDecoder(r).Decode(&rec); err != nil || rec.Checked.IsZero() || rec.Version != checkVersion {
		return false
	}
	st.condDelete, st.checked = rec.ConditionalDelete, true
	return true
}

// cacheFile is where this machine records that the server behind this
// store passed the check (see Options.CheckCacheDir); "" if nowhere.
func (st *Store) cacheFile() string {
	if st.o.CheckCacheDir == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(strings.Join([]string{st.endpoint, st.bucket, st.prefix}, "\n")))
	return filepath.Join(st.o.CheckCacheDir, hex.EncodeToString(sum[:16])+".json")
}

// cacheChecked records a successful check on this machine. Failing to is
// harmless: the next process reads the marker in the bucket.
func (st *Store) cacheChecked(b []byte) {
	path := st.cacheFile()
	if path == "" || os.MkdirAll(filepath.Dir(path), 0o700) != nil {
		return
	}
	_ = renameio.WriteFile(path, b, 0o600)
}

// writeChecked records a successful check for later processes. Failing to
// is harmless: they check again.
func (st *Store) writeChecked(ctx context.Context) {
	b, err := json.Marshal(checkedRecord{Version: checkVersion, Checked: time.Now().UTC(), ConditionalDelete: st.condDelete})
	if err != nil {
		return
	}
	key := st.prefix + CheckedMarker
	if _, err := st.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &st.bucket, Key: &key, Body: bytes.NewReader(b)}); err == nil {
		st.cacheChecked(b)
	}
}

// ConditionalDelete reports whether CheckConditionalWrites found that the
// server honours If-Match on DELETE.
func (st *Store) ConditionalDelete() bool {
	st.checkMu.Lock()
	defer st.checkMu.Unlock()
	return st.condDelete
}

type probe struct {
	st  *Store
	ctx context.Context
	key *string
}

func (p probe) refuse(what string, err error) error {
	return &Error{Bucket: p.st.bucket, Op: "check conditional writes", Key: *p.key,
		Reason: ErrNoConditionalWrites.Error() + ": " + what, Kind: ErrNoConditionalWrites, Err: err}
}

// refuseOr returns err as a request error, or, if the server said it does
// not implement what was asked, as a refusal.
func (p probe) refuseOr(err error, what string) error {
	if isNotImplemented(err) || isPrecondition(err) {
		return p.refuse(what, err)
	}
	return p.st.requestError("check conditional writes: put", *p.key, err)
}

// mustFail checks that a conditional request whose condition is false
// failed as such.
func (p probe) mustFail(err error, what string) error {
	switch {
	case err == nil:
		return p.refuse(what, nil)
	case isPrecondition(err), isNotFound(err):
		return nil // refused (If-Match on a missing object may be a 404)
	case isNotImplemented(err):
		return p.refuse(strings.Replace(what, "ignored", "does not implement", 1), err)
	}
	return p.st.requestError("check conditional writes", *p.key, err)
}

func (p probe) put(body, ifMatch, ifNoneMatch string) (string, error) {
	in := &s3.PutObjectInput{Bucket: &p.st.bucket, Key: p.key, Body: strings.NewReader("ckpt conditional write probe " + body)}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := p.st.client.PutObject(p.ctx, in)
	if err != nil {
		return "", err
	}
	return aws.ToString(out.ETag), nil
}

func (p probe) put1(body, ifMatch, ifNoneMatch string) error {
	_, err := p.put(body, ifMatch, ifNoneMatch)
	return err
}

// multipart checks that CompleteMultipartUpload honours If-None-Match: *
// over an existing object, then aborts the upload.
func (p probe) multipart() error {
	c := p.st.client
	mpu, err := c.CreateMultipartUpload(p.ctx, p.st.multipartInput(p.key))
	if err != nil {
		return p.st.requestError("check conditional writes: start multipart upload of", *p.key, err)
	}
	defer func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(p.ctx), 30*time.Second)
		defer cancel()
		_, _ = c.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &p.st.bucket, Key: p.key, UploadId: mpu.UploadId})
	}()
	part, err := c.UploadPart(p.ctx, &s3.UploadPartInput{
		Bucket: &p.st.bucket, Key: p.key, UploadId: mpu.UploadId, PartNumber: aws.Int32(1),
		Body: strings.NewReader("ckpt conditional write probe 6"),
	})
	if err != nil {
		return p.st.requestError("check conditional writes: upload part of", *p.key, err)
	}
	_, err = c.CompleteMultipartUpload(p.ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &p.st.bucket, Key: p.key, UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{p.st.completedPart(1, part)}},
		IfNoneMatch:     aws.String("*"),
	})
	return p.mustFail(err, "it ignored If-None-Match: * on CompleteMultipartUpload over an existing object")
}

// unchanged checks that the probe still has ETag etag: that the writes the
// server refused changed nothing.
func (p probe) unchanged(etag string) error {
	out, err := p.st.client.HeadObject(p.ctx, &s3.HeadObjectInput{Bucket: &p.st.bucket, Key: p.key})
	if err != nil {
		return p.st.requestError("check conditional writes: head", *p.key, err)
	}
	if got := aws.ToString(out.ETag); got != etag {
		return p.refuse(fmt.Sprintf("it refused conditional writes, but changed the object all the same (ETag %s, then %s)", etag, got), nil)
	}
	return nil
}

// conditionalDelete reports whether DELETE with a wrong If-Match is refused.
func (p probe) conditionalDelete() (bool, error) {
	c := p.st.client
	_, err := c.DeleteObject(p.ctx, &s3.DeleteObjectInput{Bucket: &p.st.bucket, Key: p.key, IfMatch: aws.String(badETag)})
	switch {
	case isPrecondition(err):
		return true, nil
	case err == nil:
		return false, nil // ignored: the probe is gone, or was kept without a word
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false, err
	case httpStatus(err) >= 400 && httpStatus(err) < 500, isNotImplemented(err):
		return false, nil // the header is not supported
	}
	return false, p.st.requestError("check conditional writes: delete", *p.key, err)
}
