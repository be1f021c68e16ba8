package s3store

import (
	"context"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// Listed is what one listing tells of a session.
type Listed struct {
	// Saved is when its current manifest was last written; zero if it has
	// none.
	Saved time.Time
	// Locked is set when it has a lock object.
	Locked bool
}

// ListSaved returns every session under the prefix with what one listing of
// all keys tells of it: when its manifest was written (the order in which
// 'ckpt last' reads sessions, youngest first) and whether it is locked (so
// that 'ckpt list' reads no lock that is not there).
func (st *Store) ListSaved(ctx context.Context) (map[string]Listed, error) {
	out := map[string]Listed{}
	p := s3.NewListObjectsV2Paginator(st.client, &s3.ListObjectsV2Input{
		Bucket:  &st.bucket,
		Prefix:  aws.String(st.prefix),
		MaxKeys: aws.Int32(st.o.ListPageSize),
	})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, st.requestError("list", st.prefix, err)
		}
		for _, o := range page.Contents {
			id, name, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), st.prefix), "/")
			if !ok || id == "" || strings.HasPrefix(id, ".") {
				continue
			}
			l := out[id]
			switch name {
			case storage.CheckpointFile:
				l.Saved = aws.ToTime(o.LastModified)
			case storage.NextFile:
				l.Locked = true
			}
			out[id] = l
		}
	}
	return out, nil
}
