package s3store

import (
	"context"
	"net/url"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// SweepTemp implements storage.Backend: it aborts the session's unfinished
// multipart uploads started before cutoff, and returns their urls
// (s3://BUCKET/KEY?uploadId=ID); with dryRun it only returns them. An
// upload is provably abandoned only when no live writer holds the lease
// (a writer uploads while it holds it), so while one does, SweepTemp
// leaves every upload alone; BreakLock aborts a broken writer's uploads.
func (b *Backend) SweepTemp(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	ls, err := b.readLease(ctx, leaseObject)
	if err != nil {
		return nil, err
	}
	if ls != nil && !b.judge(ls, leaseObject, time.Now()).Stale {
		return nil, nil
	}
	return b.abortUploads(ctx, cutoff, dryRun)
}

// uploads returns the session's unfinished multipart uploads started
// before cutoff (all of them if cutoff is zero).
func (b *Backend) uploads(ctx context.Context, cutoff time.Time) ([]types.MultipartUpload, error) {
	var out []types.MultipartUpload
	in := &s3.ListMultipartUploadsInput{Bucket: &b.st.bucket, Prefix: &b.dir}
	for {
		page, err := b.st.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return nil, b.st.requestError("list multipart uploads", b.dir, err)
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
// cutoff (all if it is zero), and returns their urls; with dryRun it only
// returns them.
func (b *Backend) abortUploads(ctx context.Context, cutoff time.Time, dryRun bool) ([]string, error) {
	ups, err := b.uploads(ctx, cutoff)
	if err != nil {
		return nil, err
	}
	var done []string
	for _, u := range ups {
		if !dryRun {
			_, err := b.st.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &b.st.bucket, Key: u.Key, UploadId: u.UploadId})
			if err != nil && !isNotFound(err) {
				return done, b.st.requestError("abort multipart upload of", aws.ToString(u.Key), err)
			}
		}
		done = append(done, b.st.url(aws.ToString(u.Key))+"?uploadId="+url.QueryEscape(aws.ToString(u.UploadId)))
	}
	return done, nil
}
