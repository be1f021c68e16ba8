// Package s3store keeps ckpt sessions in S3-compatible object storage (AWS
// S3, MinIO, versitygw, ...), with the semantics of storage.Dir: the same
// storage.Session and storage.Tx, the same errors, the same checkpoint
// bytes. Import it as github.com/ckpt-dev/ckpt/pkg/storage/s3.
//
// A Store is a prefix of a bucket, s3://BUCKET/PREFIX; a session is the
// objects under PREFIX/ID/:
//
//	session        the current checkpoint: the bytes of a local session file
//	session.<N>    kept generations, server-side copies (see storage.Keep)
//	session.next   the lock: a lease, JSON naming its owner and its expiry
//	logs/NAME.log  the log of step NAME
//
// # The lease
//
// A writer takes the lock by creating session.next with If-None-Match: *,
// which fails if it exists. The lease names its owner (pid, host, user,
// command, start time, as a local lock does), a random token and its
// duration, Options.LeaseDuration. While the writer holds it, a goroutine
// renews it every third of that duration with If-Match on the ETag of its
// last write, which fails if anyone broke it. A lease is stale when it has
// not been renewed for LeaseDuration+StaleGrace: its Last-Modified is
// compared with the Date of the response that returned it, both by the
// server's clock, so that no two machines' clocks are ever compared. (Only
// where the server sends no Date is the writer's recorded expiry compared
// with the reader's clock; their skew must then stay below StaleGrace.)
// BreakLock deletes a stale lease, or with force a live one, with If-Match
// on the ETag it judged, so that a lease renewed meanwhile is judged again,
// never deleted unseen; on a server that ignores If-Match on DELETE (see
// CheckConditionalWrites) it checks the ETag just before deleting instead,
// which leaves a window of one request.
//
// Unlike a local lock, whose flock proves its writer dead, an expired lease
// proves only that its writer stopped renewing: it may be paused (SIGSTOP,
// a long GC, a suspended VM) or cut off from the server. Breaking it is
// safe all the same, because of how a save ends.
//
// # A save
//
// Under the lease a save reads the current checkpoint's header and ETag
// (and checks IfGeneration against it), streams the new checkpoint up (in
// one PutObject up to Options.PartSize, else as a multipart upload whose
// parts go up while the payload is read), renews the lease once more
// (proving it is still this writer's), copies the checkpoint it replaces to
// session.<N> with x-amz-copy-source-if-match on the ETag it read, drops
// the generations beyond Keep, and makes the new checkpoint current with
// If-Match on that ETag (If-None-Match: * when there was none): a
// PutObject, or the CompleteMultipartUpload of the upload, which S3
// applies atomically. If anyone else saved since the read, the condition
// fails and nothing changes: a writer whose lease was broken can never
// overwrite a newer checkpoint, and reports a *storage.LockedError with
// Lost set. Lastly it deletes its lease with If-Match.
//
// Every checkpoint and every lease write differs in content (a generation
// number and a time; a renewal time and a random token), so every write has
// an ETag of its own and no ETag comes back (no ABA). When the SDK retries a
// conditional write whose first attempt succeeded but whose response was
// lost, the retry fails its condition; the writer then reads back what is
// there and recognises its own write by its header or token.
//
// # Guarantees
//
// On a server that passes CheckConditionalWrites and, like AWS S3 since
// 2020, reads its own writes (strong read-after-write and list
// consistency):
//
//  1. A checkpoint is all old or all new: an object appears whole or not at
//     all. A save that returned nil was acknowledged by the server, whose
//     durability it then has.
//  2. Every failure is an error; a writer whose lease was broken saves
//     nothing and says so.
//  3. Writers that use IfGeneration never lose an update: the generation is
//     checked under the lease and the final write is a compare-and-swap on
//     the ETag read under it. Readers never block and never see a partial
//     checkpoint.
//  4. Session ids are checked: an id never names a key outside PREFIX/ID/.
//  5. Load downloads and verifies the whole checkpoint (checkpoint.Verify)
//     before it hands out a byte: up to PartSize in memory, larger ones
//     spooled to an unlinked file in Options.TempDir. A damaged checkpoint
//     falls back to the newest intact kept generation (Checkpoint.Skipped),
//     as on disk. A transfer that breaks off is retried, and is never taken
//     for a damaged checkpoint.
//
// # Caveats
//
//   - The lease's timing decides only when a lock is reported stale, never
//     whether a checkpoint can be overwritten. A writer paused past its
//     lease can be broken while it still runs; it then fails at commit.
//     Between its last lease check and its final write (one renewal, a copy
//     and a list apart), such a writer may still copy the generation it
//     replaces into history and drop generations beyond its own Keep; the
//     current checkpoint is never affected.
//   - Remove cannot delete a set of objects atomically. It takes the lease
//     (so that no save starts), deletes the checkpoint first, then the
//     rest, and the lease last; meanwhile a listing may see the session
//     with no checkpoint and locked by "ckpt remove". Running it again
//     finishes what a crashed Remove left.
//   - A log is written when its writer is closed, so the log of a process
//     that dies before that is lost, and up to its limit is held in memory.
//   - Multipart uploads left by a writer that died are aborted by BreakLock
//     (those started before the broken lease was judged) and by Sweep (those
//     older than its cutoff, unless a live writer holds the lease); Verify
//     reports those older than one lease duration as orphans. A bucket
//     lifecycle rule that aborts incomplete multipart uploads after a day
//     is a good idea all the same.
//   - Objects have no permission bits: access is the bucket policy's, and
//     Verify reports no ProblemPermissions.
//   - A checkpoint has at most 10,000 parts: PartSize × 10,000 bytes (78 GiB
//     with the default 8 MiB parts). A save holds at most Concurrency+1
//     parts in memory (40 MiB by default); a load at most one.
//   - Without a successful CheckConditionalWrites, DELETE is assumed to
//     honour If-Match.
//
// # Requests and errors
//
// A save of a small checkpoint costs 6 to 8 requests, a load 1, a Stat 2
// (sent at once), CheckConditionalWrites 12. Configuration comes from the
// AWS SDK's standard chain (AWS_* variables, shared config and credentials
// files; AWS_ENDPOINT_URL_S3 for another endpoint) with Options on top;
// most servers other than AWS need Options.UsePathStyle. Transient failures
// (network errors, 5xx, 503 SlowDown) are retried by the SDK's standard
// retryer, Options.MaxAttempts times with jittered exponential backoff up
// to Options.MaxBackoff; an attempt fails if connecting takes 10 seconds or
// the response headers 60. A request that still fails is an *Error whose
// one-line message names the bucket, the operation, the key and the
// reason, and which wraps ErrNoBucket, ErrAccess (missing, rejected or
// expired credentials) or ErrUnavailable where one applies. The package
// never prints: the SDK's logger is silenced.
package s3store
