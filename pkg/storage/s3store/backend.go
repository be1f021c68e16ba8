package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Object names the backend itself gives a meaning to.
const (
	currentObject = "session"      // the current manifest: only Commit writes it
	leaseObject   = "session.next" // the writer's lease
)

// Backend is one session of a Store, the objects under PREFIX/ID/: object
// name N is the key PREFIX/ID/N. It implements storage.Backend with the
// conditional writes of S3 (see the package documentation). It holds no
// resources and is safe for concurrent use.
type Backend struct {
	st  *Store
	id  string
	dir string // PREFIX/ID/
}

var _ storage.Backend = (*Backend)(nil)

// ID implements storage.Backend.
func (b *Backend) ID() string { return b.id }

// Location implements storage.Backend: s3://BUCKET/PREFIX/ID.
func (b *Backend) Location() string { return b.st.url(strings.TrimSuffix(b.dir, "/")) }

func (b *Backend) key(name string) *string { return aws.String(b.dir + name) }

// where names object name in messages: its s3:// url.
func (b *Backend) where(name string) string { return b.st.url(b.dir + name) }

func (b *Backend) reqErr(op, name string, err error) error {
	return b.st.requestError(op, b.dir+name, err)
}

// notExist is the error of a missing object.
func (b *Backend) notExist(name string) error {
	return fmt.Errorf("%s: %w", b.where(name), fs.ErrNotExist)
}

// checkName refuses a name that is not one object of the session: an empty
// one, or one with an empty, "." or ".." segment. Names with "/" are the
// objects of steps and logs (steps/NAME/1.start).
func checkName(name string) error {
	for seg := range strings.SplitSeq(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid object name %q", name)
		}
	}
	return nil
}

// Check implements storage.Backend with one read of the manifest: on S3 a
// session is its manifest. A prefix holding anything else — a lease taken
// on a name that does not exist, what a writer cut off by a forced removal
// wrote after it — is no session.
func (b *Backend) Check(ctx context.Context) error {
	// A ranged GET rather than a HEAD: its error names a missing bucket.
	_, _, err := b.ReadHead(ctx, storage.CheckpointFile, 1)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("session %s: %w", b.id, storage.ErrNotFound)
	}
	return err
}

// ReadHead implements storage.Backend with one ranged GET; the size is the
// object's, from Content-Range.
func (b *Backend) ReadHead(ctx context.Context, name string, n int64) ([]byte, storage.ObjectInfo, error) {
	info := storage.ObjectInfo{Name: name}
	if err := checkName(name); err != nil {
		return nil, info, err
	}
	if n <= 0 {
		info, err := b.head(ctx, name)
		return nil, info, err
	}
	out, err := b.st.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: &b.st.bucket,
		Key:    b.key(name),
		Range:  aws.String(fmt.Sprintf("bytes=0-%d", n-1)),
	})
	switch {
	case err != nil && apiCode(err) == "InvalidRange":
		// An empty object has no byte 0.
		info, err := b.head(ctx, name)
		return nil, info, err
	case isNotFound(err):
		return nil, info, b.notExist(name)
	case err != nil:
		return nil, info, b.reqErr("get", name, err)
	}
	defer out.Body.Close()
	data, err := io.ReadAll(io.LimitReader(out.Body, n))
	if err != nil {
		return nil, info, fmt.Errorf("get %s: %w", b.where(name), &transferError{read: int64(len(data)), want: n, err: err})
	}
	info.Size = int64(len(data))
	if out.ContentRange == nil && out.ContentLength != nil {
		info.Size = *out.ContentLength // the server sent it all
	}
	if cr := aws.ToString(out.ContentRange); cr != "" {
		if i := strings.LastIndexByte(cr, '/'); i >= 0 {
			if t, err := strconv.ParseInt(cr[i+1:], 10, 64); err == nil {
				info.Size = t
			}
		}
	}
	info.Modified, info.Version = aws.ToTime(out.LastModified), aws.ToString(out.ETag)
	return data, info, nil
}

// head returns what HeadObject says of object name.
func (b *Backend) head(ctx context.Context, name string) (storage.ObjectInfo, error) {
	info := storage.ObjectInfo{Name: name}
	out, err := b.st.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &b.st.bucket, Key: b.key(name)})
	switch {
	case isNotFound(err):
		return info, b.notExist(name)
	case err != nil:
		return info, b.reqErr("head", name, err)
	}
	info.Size, info.Modified, info.Version = aws.ToInt64(out.ContentLength), aws.ToTime(out.LastModified), aws.ToString(out.ETag)
	return info, nil
}

// Put implements storage.Backend with one PutObject.
func (b *Backend) Put(ctx context.Context, name string, data []byte) error {
	if err := checkName(name); err != nil {
		return err
	}
	_, err := b.st.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &b.st.bucket, Key: b.key(name),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	return b.reqErr("put", name, err)
}

// Commit implements storage.Backend. After held.Check it writes "session"
// with one PutObject, conditional on base: If-Match, or If-None-Match: *
// when base is "". If that fails its condition, or fails in a way that
// leaves its outcome unknown (a response lost after every retry), it reads
// "session" back: if it holds data, the write landed (the SDK retried a
// write that had succeeded, and the retry failed its condition) and Commit
// returns nil. Otherwise a refused write is ErrConflict while this
// writer's lease is still its own, else a Lost *storage.LockedError.
func (b *Backend) Commit(ctx context.Context, held storage.Held, base string, data []byte) error {
	l, ok := held.(*lease)
	if !ok || l == nil || l.b.dir != b.dir || l.b.st != b.st {
		return fmt.Errorf("commit %s: the lock is not one this backend took", b.where(currentObject))
	}
	if err := l.Check(ctx); err != nil {
		return err
	}
	in := &s3.PutObjectInput{
		Bucket: &b.st.bucket, Key: b.key(currentObject),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	}
	if base == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(base)
	}
	_, err := b.st.client.PutObject(ctx, in)
	if err == nil {
		return nil
	}
	refused := isPrecondition(err) || (base != "" && isNotFound(err))
	if !refused && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) && ctx.Err() != nil {
		// Interrupted: find out all the same, or the caller cannot know.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.ttl)
		defer cancel()
	}
	landed, rerr := b.holds(ctx, currentObject, data)
	switch {
	case rerr != nil:
		return fmt.Errorf("commit %s: %w; reading it back to learn whether the write landed failed: %w", b.where(currentObject), b.reqErr("put", currentObject, err), rerr)
	case landed:
		return nil
	case !refused:
		return b.reqErr("put", currentObject, err)
	}
	switch err := l.verify(ctx); {
	case errors.As(err, new(*storage.LockedError)):
		return err
	case err != nil:
		return fmt.Errorf("commit %s: the write was refused, and reading the lease to learn why failed: %w", b.where(currentObject), err)
	}
	if base == "" {
		return fmt.Errorf("commit %s: %w: a manifest exists, and none was expected", b.where(currentObject), storage.ErrConflict)
	}
	return fmt.Errorf("commit %s: %w: it is no longer version %s", b.where(currentObject), storage.ErrConflict, base)
}

// holds reports whether object name exists with exactly the bytes of data.
func (b *Backend) holds(ctx context.Context, name string, data []byte) (bool, error) {
	out, err := b.st.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.st.bucket, Key: b.key(name)})
	switch {
	case isNotFound(err):
		return false, nil
	case err != nil:
		return false, b.reqErr("get", name, err)
	}
	defer out.Body.Close()
	if out.ContentLength != nil && *out.ContentLength != int64(len(data)) {
		return false, nil
	}
	got, err := io.ReadAll(io.LimitReader(out.Body, int64(len(data))+1))
	if err != nil {
		return false, b.reqErr("get", name, err)
	}
	return bytes.Equal(got, data), nil
}

// Copy implements storage.Backend with a server-side copy of the version
// of src that a HeadObject finds: CopyObject, or for an object larger than
// S3 copies at once (5 GiB), a multipart copy.
func (b *Backend) Copy(ctx context.Context, src, dst string) error {
	if err := errors.Join(checkName(src), checkName(dst)); err != nil {
		return err
	}
	info, err := b.head(ctx, src)
	if err != nil {
		return err
	}
	source := copySource(b.st.bucket, b.dir+src)
	if info.Size <= b.st.copyLimit() {
		_, err := b.st.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &b.st.bucket,
			Key:               b.key(dst),
			CopySource:        aws.String(source),
			CopySourceIfMatch: aws.String(info.Version),
		})
		if isNotFound(err) || isPrecondition(err) {
			return fmt.Errorf("copy %s: it changed or went away during the copy: %w", b.where(src), fs.ErrNotExist)
		}
		return b.reqErr("copy "+b.dir+src+" to", dst, err)
	}
	return b.copyParts(ctx, source, dst, info.Version, info.Size)
}

// List implements storage.Backend: ListObjectsV2 with delimiter "/", so
// that the logs, under logs/, are one common prefix and not listed.
func (b *Backend) List(ctx context.Context) ([]storage.ObjectInfo, error) {
	return b.list(ctx, &s3.ListObjectsV2Input{Prefix: &b.dir, Delimiter: aws.String("/")})
}

// ListUnder implements storage.Backend: ListObjectsV2 of PREFIX/ID/DIR/,
// without a delimiter, a thousand keys a page.
func (b *Backend) ListUnder(ctx context.Context, dir string) ([]storage.ObjectInfo, error) {
	if err := checkName(dir); err != nil {
		return nil, err
	}
	prefix := b.dir + dir + "/"
	return b.list(ctx, &s3.ListObjectsV2Input{Prefix: &prefix})
}

// list pages through the objects in asks for, in the store's bucket, and
// names them relative to the session.
func (b *Backend) list(ctx context.Context, in *s3.ListObjectsV2Input) ([]storage.ObjectInfo, error) {
	in.Bucket, in.MaxKeys = &b.st.bucket, aws.Int32(b.st.o.ListPageSize)
	var infos []storage.ObjectInfo
	p := s3.NewListObjectsV2Paginator(b.st.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.st.requestError("list", aws.ToString(in.Prefix), err)
		}
		for _, o := range page.Contents {
			infos = append(infos, storage.ObjectInfo{
				Name:     strings.TrimPrefix(aws.ToString(o.Key), b.dir),
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
				Version:  aws.ToString(o.ETag),
			})
		}
	}
	return infos, nil
}

// Delete implements storage.Backend with DeleteObjects, a thousand names a
// request. Every name that could not be deleted is reported.
func (b *Backend) Delete(ctx context.Context, names ...string) error {
	for _, name := range names {
		if err := checkName(name); err != nil {
			return err
		}
	}
	keys := make([]string, len(names))
	for i, name := range names {
		keys[i] = b.dir + name
	}
	return b.deleteKeys(ctx, keys)
}

// deleteKeys deletes keys, a thousand per request; a missing key is no
// error.
func (b *Backend) deleteKeys(ctx context.Context, keys []string) error {
	var errs []error
	for chunk := range slices.Chunk(keys, 1000) {
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, k := range chunk {
			ids[i] = types.ObjectIdentifier{Key: aws.String(k)}
		}
		out, err := b.st.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &b.st.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if isNotImplemented(err) {
			for _, k := range chunk {
				_, err := b.st.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &b.st.bucket, Key: aws.String(k)})
				if err != nil && !isNotFound(err) {
					errs = append(errs, b.st.requestError("delete", k, err))
				}
			}
			continue
		}
		if err != nil {
			return errors.Join(append(errs, b.st.requestError("delete objects under", b.dir, err))...)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				errs = append(errs, &Error{Bucket: b.st.bucket, Op: "delete", Key: aws.ToString(e.Key),
					Reason: strings.TrimSuffix(aws.ToString(e.Code)+": "+aws.ToString(e.Message), ": ")})
			}
		}
	}
	return errors.Join(errs...)
}

// Destroy implements storage.Backend. S3 cannot delete a set of objects at
// once: it deletes the current manifest first, so that a listing that
// sees the session half removed sees it without a checkpoint, then every
// other object, the unfinished uploads, and the lease last.
func (b *Backend) Destroy(ctx context.Context) error {
	if err := b.deleteKeys(ctx, []string{b.dir + currentObject}); err != nil {
		return err
	}
	for range 3 {
		keys, err := b.allKeys(ctx)
		if err != nil {
			return err
		}
		rest := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == b.dir+leaseObject })
		if len(rest) == 0 {
			if _, err := b.abortUploads(ctx, time.Time{}, false); err != nil {
				return err
			}
			return b.deleteKeys(ctx, keys)
		}
		if err := b.deleteKeys(ctx, rest); err != nil {
			return err
		}
		if _, err := b.abortUploads(ctx, time.Time{}, false); err != nil {
			return err
		}
	}
	return fmt.Errorf("destroy %s: objects kept appearing while it was removed", b.Location())
}

// allKeys lists every key under the session's prefix, logs included.
func (b *Backend) allKeys(ctx context.Context) ([]string, error) {
	var keys []string
	p := s3.NewListObjectsV2Paginator(b.st.client, &s3.ListObjectsV2Input{
		Bucket: &b.st.bucket, Prefix: &b.dir, MaxKeys: aws.Int32(b.st.o.ListPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, b.st.requestError("list", b.dir, err)
		}
		for _, o := range page.Contents {
			keys = append(keys, aws.ToString(o.Key))
		}
	}
	return keys, nil
}
