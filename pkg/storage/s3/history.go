package s3store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/ckpt-dev/ckpt/pkg/checkpoint"
	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// objects returns every object whose key starts with the session's
// directory followed by prefix, paging through all of them.
func (s *Session) objects(ctx context.Context, prefix string) ([]types.Object, error) {
	var objs []types.Object
	p := s3.NewListObjectsV2Paginator(s.st.client, &s3.ListObjectsV2Input{
		Bucket:  &s.st.bucket,
		Prefix:  aws.String(s.dir + prefix),
		MaxKeys: aws.Int32(s.st.o.ListPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.errorf("%w", s.st.requestError("list", s.dir+prefix, err))
		}
		objs = append(objs, page.Contents...)
	}
	return objs, nil
}

// name returns an object's name inside the session.
func (s *Session) name(o types.Object) string {
	return strings.TrimPrefix(aws.ToString(o.Key), s.dir)
}

// historyGenerations returns the generations kept as history, newest first.
func (s *Session) historyGenerations(ctx context.Context) ([]uint64, error) {
	objs, err := s.objects(ctx, CheckpointObject+".")
	if err != nil {
		return nil, err
	}
	var gens []uint64
	for _, o := range objs {
		if n, ok := parseHistoryName(s.name(o)); ok {
			gens = append(gens, n)
		}
	}
	slices.SortFunc(gens, func(a, b uint64) int { return cmp.Compare(b, a) })
	return gens, nil
}

// History implements storage.Session. It downloads and verifies every kept
// generation in full. A request that fails is an error, never taken for a
// damaged generation.
func (s *Session) History(ctx context.Context) ([]storage.Generation, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var out []storage.Generation
	g, ok, err := s.generation(ctx, CheckpointObject)
	if err != nil {
		return nil, err
	}
	if ok {
		g.Current = true
		out = append(out, g)
	}
	gens, err := s.historyGenerations(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range gens {
		g, ok, err := s.generation(ctx, historyName(n))
		if err != nil {
			return nil, err
		}
		if ok {
			if g.Header == nil {
				g.Generation = n
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// generation verifies one checkpoint object; ok is false if it does not
// exist or holds generation 0 (no checkpoint).
func (s *Session) generation(ctx context.Context, name string) (storage.Generation, bool, error) {
	g := storage.Generation{Path: s.st.url(s.key(name))}
	cp, err := s.load(ctx, name, "")
	var (
		ce *checkpoint.CorruptError
		ve *checkpoint.VersionError
	)
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, storage.ErrNoCheckpoint):
		return g, false, nil
	case err == nil:
		cp.Close()
		g.Generation, g.Header, g.Size = cp.Header.Generation, cp.Header, cp.Size
		return g, true, nil
	case !errors.As(err, &ce) && !errors.As(err, &ve):
		return g, false, err
	}
	g.Err = err
	// A damaged checkpoint may still have a readable header.
	if oh, herr := s.readHeader(ctx, name); herr == nil {
		g.Generation, g.Header, g.Size = oh.h.Generation, oh.h, oh.size
	}
	return g, true, nil
}

// Verify implements storage.Session: every generation is downloaded and
// verified, the lease is judged, and the session's objects and unfinished
// multipart uploads are checked for orphans.
func (s *Session) Verify(ctx context.Context) ([]storage.Problem, error) {
	gens, err := s.History(ctx)
	if err != nil {
		return nil, err
	}
	var out []storage.Problem
	for _, g := range gens {
		if g.Err != nil {
			out = append(out, storage.Problem{Kind: storage.ProblemCorrupt, Path: g.Path, Detail: g.Err.Error()})
		}
	}
	ls, err := s.readLease(ctx)
	if err != nil {
		return nil, err
	}
	var live bool
	if ls != nil {
		l := s.judge(ls, time.Now())
		live = !l.Stale
		if l.Stale {
			out = append(out, storage.Problem{Kind: storage.ProblemStaleLock, Path: s.st.url(s.key(LeaseObject)), Detail: fmt.Sprintf("held by %s: %s", l.Owner, l.Reason)})
		}
	}
	objs, err := s.objects(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		name := s.name(o)
		_, isHistory := parseHistoryName(name)
		if name != CheckpointObject && name != LeaseObject && !isHistory && !isLogName(name) {
			out = append(out, storage.Problem{Kind: storage.ProblemOrphan, Path: s.st.url(aws.ToString(o.Key)), Detail: "not an object ckpt writes"})
		}
	}
	if !live {
		// With no live writer, an unfinished upload older than a lease
		// is an orphan.
		ups, err := s.uploads(ctx, time.Now().Add(-s.st.o.LeaseDuration))
		if err != nil {
			return nil, err
		}
		for _, u := range ups {
			out = append(out, storage.Problem{Kind: storage.ProblemOrphan, Path: uploadPath(s.st, u), Detail: "unfinished multipart upload of a writer that is gone"})
		}
	}
	return out, nil
}

func isLogName(name string) bool {
	step, ok := strings.CutPrefix(name, LogPrefix)
	if !ok {
		return false
	}
	step, ok = strings.CutSuffix(step, ".log")
	return ok && checkpoint.ValidName(step)
}

func uploadPath(st *Store, u types.MultipartUpload) string {
	return st.url(aws.ToString(u.Key)) + "?uploadId=" + url.QueryEscape(aws.ToString(u.UploadId))
}

// uploads returns the session's unfinished multipart uploads started
// before cutoff (all of them if cutoff is zero).
func (s *Session) uploads(ctx context.Context, cutoff time.Time) ([]types.MultipartUpload, error) {
	var out []types.MultipartUpload
	in := &s3.ListMultipartUploadsInput{Bucket: &s.st.bucket, Prefix: aws.String(s.dir)}
	for {
		page, err := s.st.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, s.errorf("%w", s.st.requestError("list multipart uploads", s.dir, err))
		}
		for _, u := range page.Uploads {
			if cutoff.IsZero() || aws.ToTime(u.Initiated).Before(cutoff) {
				out = append(out, u)
			}
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}

// abortUploads aborts the session's multipart uploads started before
// cutoff, and returns them; with dryRun it only returns them.
func (s *Session) abortUploads(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	ups, err := s.uploads(ctx, cutoff)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, u := range ups {
		if !dryRun {
			_, err := s.st.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &s.st.bucket, Key: u.Key, UploadId: u.UploadId})
			if err != nil && !isNotFound(err) {
				return done, s.errorf("%w", s.st.requestError("abort multipart upload of", aws.ToString(u.Key), err))
			}
		}
		done = append(done, uploadPath(s.st, u))
	}
	return done, nil
}

// Sweep implements storage.Session: it breaks a stale lease last renewed
// before cutoff and, unless a live writer holds the lease, aborts the
// multipart uploads started before cutoff, and returns their urls. With
// dryRun it only returns them.
func (s *Session) Sweep(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	var swept []string
	ls, err := s.readLease(ctx)
	if err != nil {
		return nil, err
	}
	if ls != nil {
		l := s.judge(ls, time.Now())
		if !l.Stale {
			return nil, nil
		}
		if l.Since.Before(cutoff) {
			if !dryRun {
				if _, err := s.BreakLock(ctx, false); err != nil {
					return swept, err
				}
			}
			swept = append(swept, s.st.url(s.key(LeaseObject)))
		}
	}
	ups, err := s.abortUploads(ctx, cutoff, dryRun)
	return append(swept, ups...), err
}

// Remove implements storage.Session. It takes the session's lease itself,
// breaking a stale one (or, with force, a live one), so that no writer
// starts while it deletes; it deletes the checkpoint first, then every
// other object and unfinished upload, and the lease last. S3 cannot
// remove a set of objects atomically: a listing may see the session while
// it is being removed, with no checkpoint and a lock held by "remove".
func (s *Session) Remove(ctx context.Context, force bool, opts ...storage.RemoveOption) (err error) {
	c := storage.NewRemoveConfig(opts)
	if err := s.check(ctx); err != nil {
		return err
	}
	l, err := s.claim(ctx, force)
	if err != nil {
		return err
	}
	defer func() {
		if rerr := l.release(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = s.errorf("removed, but deleting its lock failed: %w", rerr)
		}
	}()
	l.keepAlive()
	if c.IfGeneration != nil {
		oh, err := s.current(ctx)
		if err != nil {
			return err
		}
		var gen uint64
		if oh != nil {
			gen = oh.h.Generation
		}
		if gen != *c.IfGeneration {
			return s.errorf("%w: expected generation %d, the current one is %d", storage.ErrConflict, *c.IfGeneration, gen)
		}
	}
	for range 3 {
		if err := s.deleteObject(ctx, CheckpointObject); err != nil {
			return s.errorf("remove: %w", err)
		}
		objs, err := s.objects(ctx, "")
		if err != nil {
			return err
		}
		objs = slices.DeleteFunc(objs, func(o types.Object) bool { return s.name(o) == LeaseObject })
		if err := s.deleteObjects(ctx, objs); err != nil {
			return s.errorf("remove: %w", err)
		}
		if _, err := s.abortUploads(ctx, time.Time{}, false); err != nil {
			return err
		}
		left, err := s.objects(ctx, "")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(left, func(o types.Object) bool { return s.name(o) != LeaseObject }) {
			return nil
		}
	}
	return s.errorf("remove: objects kept appearing while it was removed")
}

// claim takes the session's lease for Remove, breaking one that is stale
// or, with force, live.
func (s *Session) claim(ctx context.Context, force bool) (*lease, error) {
	var err error
	for range 4 {
		var l *lease
		l, err = s.acquire(ctx, storage.CurrentOwner("ckpt remove", time.Now()))
		var le *storage.LockedError
		if !errors.As(err, &le) {
			return l, err
		}
		if !le.Stale && !force {
			return nil, err
		}
		if _, berr := s.BreakLock(ctx, force); berr != nil {
			return nil, berr
		}
	}
	return nil, err
}

// deleteObject deletes one object; one already gone is not an error.
func (s *Session) deleteObject(ctx context.Context, name string) error {
	_, err := s.st.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.st.bucket, Key: aws.String(s.key(name))})
	if err != nil && !isNotFound(err) {
		return s.st.requestError("delete", s.key(name), err)
	}
	return nil
}

// deleteObjects deletes objs, a thousand per request.
func (s *Session) deleteObjects(ctx context.Context, objs []types.Object) error {
	for chunk := range slices.Chunk(objs, 1000) {
		ids := make([]types.ObjectIdentifier, len(chunk))
		for i, o := range chunk {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := s.st.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: &s.st.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if isNotImplemented(err) {
			for _, o := range chunk {
				if err := s.deleteObject(ctx, s.name(o)); err != nil {
					return err
				}
			}
			continue
		}
		if err != nil {
			return s.st.requestError("delete objects under", s.dir, err)
		}
		for _, e := range out.Errors {
			if aws.ToString(e.Code) != "NoSuchKey" {
				return fmt.Errorf("s3 bucket %s: delete %s: %s: %s", s.st.bucket, aws.ToString(e.Key), aws.ToString(e.Code), aws.ToString(e.Message))
			}
		}
	}
	return nil
}

// copyObject copies object src to dst inside the session, only if src's
// ETag is still etag. Objects over the single-copy limit are copied in
// parts.
func (s *Session) copyObject(ctx context.Context, src, dst, etag string, size int64) error {
	source := copySource(s.st.bucket, s.key(src))
	if size <= s.st.copyLimit() {
		_, err := s.st.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:            &s.st.bucket,
			Key:               aws.String(s.key(dst)),
			CopySource:        aws.String(source),
			CopySourceIfMatch: aws.String(etag),
		})
		if err != nil {
			return s.st.requestError("copy "+s.key(src)+" to", s.key(dst), err)
		}
		return nil
	}
	return s.copyParts(ctx, source, dst, etag, size)
}

func (s *Session) copyParts(ctx context.Context, source, dst, etag string, size int64) (err error) {
	key := aws.String(s.key(dst))
	mpu, err := s.st.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.st.bucket, Key: key})
	if err != nil {
		return s.st.requestError("start multipart copy to", s.key(dst), err)
	}
	defer func() {
		if err != nil {
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			defer cancel()
			_, _ = s.st.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &s.st.bucket, Key: key, UploadId: mpu.UploadId})
		}
	}()
	part := max(s.st.copyPartSize(), (size+maxParts-1)/maxParts)
	var parts []types.CompletedPart
	for off, num := int64(0), int32(1); off < size; off, num = off+part, num+1 {
		end := min(off+part, size) - 1
		out, err := s.st.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket: &s.st.bucket, Key: key, UploadId: mpu.UploadId, PartNumber: aws.Int32(num),
			CopySource:        aws.String(source),
			CopySourceIfMatch: aws.String(etag),
			CopySourceRange:   aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			return s.st.requestError(fmt.Sprintf("copy part %d to", num), s.key(dst), err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(num)})
	}
	_, err = s.st.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &s.st.bucket, Key: key, UploadId: mpu.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		return s.st.requestError("complete multipart copy to", s.key(dst), err)
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
