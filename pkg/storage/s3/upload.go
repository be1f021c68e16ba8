package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// upload streams an object in bounded memory. What fits in one part is
// sent by finish as one PutObject; anything larger becomes a multipart
// upload whose parts go up while the writer writes, at most
// Options.Concurrency at once, and which finish completes. Either way the
// object appears, all at once, only in finish, and only if finish's
// condition holds. An upload is not safe for concurrent use.
type upload struct {
	s        *Session
	ctx      context.Context // the parts'; cancelled by abort
	cancel   context.CancelFunc
	name     string
	partSize int
	lost     func() error // non-nil once the writer's lease is broken

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

func (s *Session) newUpload(ctx context.Context, name string, lost func() error) *upload {
	c := s.st.o.Concurrency
	ctx, cancel := context.WithCancel(ctx)
	return &upload{
		s: s, ctx: ctx, cancel: cancel, name: name, lost: lost,
		partSize: int(s.st.o.PartSize),
		pool:     make(chan []byte, c+1),
	}
}

func (u *upload) key() *string { return aws.String(u.s.key(u.name)) }

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
	if err := u.lost(); err != nil {
		return err
	}
	if u.id == nil {
		out, err := u.s.st.client.CreateMultipartUpload(u.ctx, u.s.st.multipartInput(u.key()))
		if err != nil {
			return u.s.reqErr("start multipart upload of", u.name, err)
		}
		u.id = out.UploadId
	}
	if u.nparts == maxParts {
		return u.s.errorf("the checkpoint is larger than %d parts of %d bytes: raise the part size", maxParts, u.partSize)
	}
	u.nparts++
	num, buf := u.nparts, u.buf
	u.buf = nil
	u.wg.Go(func() {
		defer func() { u.pool <- buf }()
		if u.failure() != nil {
			return
		}
		out, err := u.s.st.client.UploadPart(u.ctx, &s3.UploadPartInput{
			Bucket:        &u.s.st.bucket,
			Key:           u.key(),
			UploadId:      u.id,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(int64(len(buf))),
		})
		if err != nil {
			u.fail(u.s.reqErr(fmt.Sprintf("upload part %d of", num), u.name, err))
			return
		}
		u.mu.Lock()
		u.parts = append(u.parts, u.s.st.completedPart(num, out))
		u.mu.Unlock()
	})
	return nil
}

// condition is what the final write requires of the object it replaces:
// ifMatch its ETag, or, with ifMatch "", that there is none.
type condition struct{ ifMatch string }

func (c condition) apply() (ifMatch, ifNoneMatch *string) {
	if c.ifMatch == "" {
		return nil, aws.String("*")
	}
	return aws.String(c.ifMatch), nil
}

// finish makes the object appear, if cond holds, and returns its ETag. On
// failure the upload is aborted.
func (u *upload) finish(ctx context.Context, cond condition) (etag string, err error) {
	if u.done {
		return "", errors.New("upload already finished")
	}
	u.done = true
	defer u.cancel()
	ifMatch, ifNoneMatch := cond.apply()
	if u.id == nil {
		out, err := u.s.st.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &u.s.st.bucket,
			Key:           u.key(),
			Body:          bytes.NewReader(u.buf),
			ContentLength: aws.Int64(int64(len(u.buf))),
			IfMatch:       ifMatch,
			IfNoneMatch:   ifNoneMatch,
		})
		if err != nil {
			return "", u.s.reqErr("put", u.name, err)
		}
		return aws.ToString(out.ETag), nil
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
		return "", err
	}
	parts := slices.SortedFunc(slices.Values(u.parts), func(a, b types.CompletedPart) int {
		return int(aws.ToInt32(a.PartNumber) - aws.ToInt32(b.PartNumber))
	})
	out, err := u.s.st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &u.s.st.bucket,
		Key:             u.key(),
		UploadId:        u.id,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		IfMatch:         ifMatch,
		IfNoneMatch:     ifNoneMatch,
	})
	if err != nil {
		return "", u.s.reqErr("complete multipart upload of", u.name, err)
	}
	u.id = nil
	return aws.ToString(out.ETag), nil
}

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
	_, err := u.s.st.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.s.st.bucket, Key: u.key(), UploadId: u.id})
	if err != nil && !isNotFound(err) {
		return u.s.reqErr("abort multipart upload of", u.name, err)
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
