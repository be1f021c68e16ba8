package s3store

import "context"

// Hooks for the tests of package s3store_test, which import s3test, which
// imports this package.

// SetNoRenew makes the writers of st never renew their lease, as if paused.
func SetNoRenew(st *Store) { st.noRenew = true }

// SetCopyLimit makes Copy copy objects larger than n bytes in parts.
func SetCopyLimit(st *Store, n int64) { st.testCopyLimit = n }

// ReadChecked reports whether st finds a recorded conditional-writes check.
func ReadChecked(ctx context.Context, st *Store) bool {
	ok, _ := st.readChecked(ctx)
	return ok
}

// Key returns the key of object name of b.
func Key(b *Backend, name string) string { return b.dir + name }

const DownloadAttempts = downloadAttempts

var MultipartETag = multipartETag
