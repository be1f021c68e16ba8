package s3store

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Create implements storage.Backend. What fits in one part
// (Options.PartSize) is one PutObject with If-None-Match: *; anything
// larger is a multipart upload whose parts go up while r is read, at most
// Options.Concurrency at once, completed with If-None-Match: *. Servers
// differ in what they do with a completion (versitygw answers 200 to the
// completion of an upload that was aborted, and stores nothing), so Create
// then reads the object's size back with HeadObject and fails unless it is
// what was sent. On any failure the upload is aborted.
//
// When a retried request fails its If-None-Match because its first
// attempt succeeded, Create recognises its own object by its ETag, the MD5
// of its bytes or of its parts' MD5s, on servers that compute ETags as S3
// does; elsewhere it reports fs.ErrExist.
func (b *Backend) Create(ctx context.Context, name string, r io.Reader) (int64, error) {
	if err := checkName(name); err != nil {
		return 0, err
	}
	u := b.newUpload(ctx, name)
	// The struct hides r's WriterTo, so that reading stops when ctx is done.
	// The protocol hands Create a reader that stops when ctx is done.
	if _, err := io.Copy(u, r); err != nil {
		err = fmt.Errorf("create %s: %w", b.where(name), err)
		return 0, errors.Join(err, u.abort(ctx))
	}
	if err := u.finish(ctx); err != nil {
		return 0, err
	}
	return u.size, nil
}

// upload streams an object in bounded memory: what fits in one part is sent
// by finish as one PutObject; anything larger becomes a multipart upload
// whose parts go up while the writer writes, and which finish completes.
// Either way the object appears, all at once, only in finish. An upload is
// not safe for concurrent use.
type upload struct {
	b        *Backend
	ctx      context.Context // the parts'; cancelled by abort
	cancel   context.CancelFunc
	name     string
	partSize int
	size     int64 // bytes written

	buf  []byte // the part being filled
	pool chan []byte
	nbuf int

	id     *string // the multipart upload, once started
	wg     sync.WaitGroup
	mu     sync.Mutex
	parts  []types.CompletedPart
	err    error
	nparts int32
	done   bool
}

func (b *Backend) newUpload(ctx context.Context, name string) *upload {
	ctx, cancel := context.WithCancel(ctx)
	return &upload{
		b: b, ctx: ctx, cancel: cancel, name: name,
		partSize: int(b.st.o.PartSize),
		pool:     make(chan []byte, b.st.o.Concurrency+1),
	}
}

func (u *upload) key() *string { return u.b.key(u.name) }

// getBuf returns an empty part buffer: a free one, a new one while fewer
// than Concurrency+1 exist, else the next one a finished part frees.
func (u *upload) getBuf() []byte {
	select {
	case b := <-u.pool:
		return b[:0]
	default:
	}
	if u.nbuf < cap(u.pool) {
		u.nbuf++
		if u.nparts == 0 {
			// Maybe all there is: start small, grow in Write.
			return make([]byte, 0, min(64<<10, u.partSize))
		}
		return make([]byte, 0, u.partSize)
	}
	return (<-u.pool)[:0]
}

func (u *upload) failure() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.err
}

func (u *upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

// Write buffers p and sends every part it fills.
func (u *upload) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if err := u.failure(); err != nil {
			return 0, err
		}
		if u.buf == nil {
			u.buf = u.getBuf()
		}
		k := min(len(p), u.partSize-len(u.buf))
		if need := len(u.buf) + k; need > cap(u.buf) {
			grown := make([]byte, len(u.buf), min(max(2*cap(u.buf), need), u.partSize))
			copy(grown, u.buf)
			u.buf = grown
		}
		u.buf = append(u.buf, p[:k]...)
		u.size += int64(k)
		p = p[k:]
		if len(u.buf) == u.partSize {
			if err := u.sendPart(); err != nil {
				u.fail(err)
				return 0, err
			}
		}
	}
	return n, nil
}

// sendPart starts the upload of the filled buffer as the next part.
func (u *upload) sendPart() error {
	if u.id == nil {
		out, err := u.b.st.client.CreateMultipartUpload(u.ctx, u.b.st.multipartInput(u.key()))
		if err != nil {
			return u.b.reqErr("start multipart upload of", u.name, err)
		}
		u.id = out.UploadId
	}
	if u.nparts == maxParts {
		return fmt.Errorf("create %s: the object is larger than %d parts of %d bytes: raise the part size", u.b.where(u.name), maxParts, u.partSize)
	}
	u.nparts++
	num, buf := u.nparts, u.buf
	u.buf = nil
	u.wg.Go(func() {
		defer func() { u.pool <- buf }()
		if u.failure() != nil {
			return
		}
		out, err := u.b.st.client.UploadPart(u.ctx, &s3.UploadPartInput{
			Bucket:        &u.b.st.bucket,
			Key:           u.key(),
			UploadId:      u.id,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(int64(len(buf))),
		})
		if err != nil {
			u.fail(u.b.reqErr(fmt.Sprintf("upload part %d of", num), u.name, err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, u.b.st.completedPart(num, out))
		u.mu.Unlock()
	})
	return nil
}

// finish makes the object appear if there is none of its name. On failure
// the upload is aborted.
func (u *upload) finish(ctx context.Context) (err error) {
	if u.done {
		return errors.New("upload already finished")
	}
	u.done = true
	defer u.cancel()
	if u.id == nil {
		_, err := u.b.st.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &u.b.st.bucket,
			Key:           u.key(),
			Body:          bytes.NewReader(u.buf),
			ContentLength: aws.Int64(int64(len(u.buf))),
			IfNoneMatch:   aws.String("*"),
		})
		if err != nil {
			sum := md5.Sum(u.buf)
			return u.failed(ctx, "put", err, hex.EncodeToString(sum[:]))
		}
		return nil
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, u.abortUpload(ctx))
		}
	}()
	if len(u.buf) > 0 {
		if err := u.sendPart(); err != nil {
			u.fail(err)
		}
	}
	u.wg.Wait()
	if err := u.failure(); err != nil {
		return err
	}
	parts := slices.SortedFunc(slices.Values(u.parts), func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	out, err := u.b.st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &u.b.st.bucket,
		Key:             u.key(),
		UploadId:        u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfNoneMatch:     aws.String("*"),
	})
	if err != nil {
		if err := u.failed(ctx, "complete multipart upload of", err, multipartETag(parts)); err != nil {
			return err
		}
	} else if err := u.check(ctx, aws.ToString(out.ETag)); err != nil {
		return err
	}
	u.id = nil // completed: nothing to abort
	return nil
}

// check reads back what a completion stored: an object of the size sent
// (and, if the completion named one, of its ETag).
func (u *upload) check(ctx context.Context, etag string) error {
	info, err := u.b.head(ctx, u.name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("create %s: the server acknowledged the multipart upload, but stored nothing", u.b.where(u.name))
	}
	if err != nil {
		return fmt.Errorf("create %s: reading back the object uploaded: %w", u.b.where(u.name), err)
	}
	if info.Size != u.size || (etag != "" && info.Version != "" && unquote(info.Version) != unquote(etag)) {
		return fmt.Errorf("create %s: the server acknowledged a multipart upload of %d bytes (ETag %s), but holds %d bytes (ETag %s)",
			u.b.where(u.name), u.size, etag, info.Size, info.Version)
	}
	return nil
}

// failed handles the failure of the request that makes the object appear.
// The request may have succeeded all the same: its response was lost, and
// the SDK's retry failed its If-None-Match (or, for a completion, found the
// upload gone). So the object is this upload's own if it has etag, the ETag
// S3 computes for the bytes sent, and the size sent, and Create succeeded.
// Otherwise a refused condition is fs.ErrExist, anything else the request's
// error.
func (u *upload) failed(ctx context.Context, op string, err error, etag string) error {
	if etag != "" {
		info, herr := u.b.head(ctx, u.name)
		if herr == nil && unquote(info.Version) == etag && info.Size == u.size {
			return nil
		}
	}
	if isPrecondition(err) {
		return fmt.Errorf("create %s: %w (%w)", u.b.where(u.name), fs.ErrExist, u.b.reqErr(op, u.name, err))
	}
	return u.b.reqErr(op, u.name, err)
}

// multipartETag is the ETag S3 gives the object of a multipart upload: the
// MD5 of its parts' MD5s, then "-" and their number; "" if a part's ETag is
// not an MD5.
func multipartETag(parts []types.CompletedPart) string {
	h := md5.New()
	for _, p := range parts {
		sum, err := hex.DecodeString(unquote(aws.ToString(p.ETag)))
		if err != nil || len(sum) != md5.Size {
			return ""
		}
		h.Write(sum)
	}
	return fmt.Sprintf("%x-%d", h.Sum(nil), len(parts))
}

func unquote(etag string) string { return strings.Trim(etag, `"`) }

// abort abandons an upload that finish did not complete.
func (u *upload) abort(ctx context.Context) error {
	if u.done {
		return nil
	}
	u.done = true
	if u.id == nil {
		u.cancel()
		return nil
	}
	return u.abortUpload(ctx)
}

func (u *upload) abortUpload(ctx context.Context) error {
	u.fail(errors.New("upload aborted"))
	u.cancel()
	u.wg.Wait()
	if u.id == nil {
		return nil
	}
	// Even when ctx is done: an abandoned upload keeps its parts.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, err := u.b.st.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.b.st.bucket, Key: u.key(), UploadId: u.id})
	if err != nil && !isNotFound(err) {
		return u.b.reqErr("abort multipart upload of", u.name, err)
	}
	u.id = nil
	return nil
}

// multipartInput starts a multipart upload of key. When the SDK adds
// checksums to requests that support them (its default), the upload is
// declared CRC32, so that the parts' checksums are checked, and stored, by
// the server; CompleteMultipartUpload must then list them.
func (st *Store) multipartInput(key *string) *s3.CreateMultipartUploadInput {
	in := &s3.CreateMultipartUploadInput{Bucket: &st.bucket, Key: key}
	if st.client.Options().RequestChecksumCalculation == aws.RequestChecksumCalculationWhenSupported {
		in.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32
	}
	return in
}

// completedPart lists part num, as UploadPart returned it, for
// CompleteMultipartUpload.
func (st *Store) completedPart(num int32, out *s3.UploadPartOutput) types.CompletedPart {
	p := types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(num)}
	if st.client.Options().RequestChecksumCalculation == aws.RequestChecksumCalculationWhenSupported {
		p.ChecksumCRC32 = out.ChecksumCRC32
	}
	return p
}

// copyParts copies source, of size bytes and ETag etag, to object dst in
// parts, as S3 requires above 5 GiB.
func (b *Backend) copyParts(ctx context.Context, source, dst, etag string, size int64) (err error) {
	key := b.key(dst)
	mpu, err := b.st.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &b.st.bucket, Key: key})
	if err != nil {
		return b.reqErr("start multipart copy to", dst, err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = b.st.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &b.st.bucket, Key: key, UploadId: mpu.UploadId})
		}
	}()
	part := max(b.st.copyPartSize(), (size+maxParts-1)/maxParts)
	var parts []types.CompletedPart
	for off, num := int64(0), int32(1); off < size; off, num = off+part, num+1 {
		end := min(off+part, size) - 1
		out, err := b.st.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &b.st.bucket, Key: key, UploadId: mpu.UploadId, PartNumber: aws.Int32(num),
			CopySource:        aws.String(source),
			CopySourceIfMatch: aws.String(etag),
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			return b.reqErr(fmt.Sprintf("copy part %d to", num), dst, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(num)})
	}
	_, err = b.st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &b.st.bucket, Key: key, UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return b.reqErr("complete multipart copy to", dst, err)
	}
	info, err := b.head(ctx, dst)
	if err != nil {
		return err
	}
	if info.Size != size {
		return fmt.Errorf("copy to %s: the server acknowledged a copy of %d bytes, but holds %d", b.where(dst), size, info.Size)
	}
	return nil
}

// copySource is the x-amz-copy-source of key in bucket, each path segment
// escaped.
func copySource(bucket, key string) string {
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		segs[i] = url.PathEscape(seg)
	}
	return bucket + "/" + strings.Join(segs, "/")
}
