// Package s3store keeps ckpt sessions in S3-compatible object storage (AWS
// S3, MinIO, versitygw, ...). It implements storage.Backend: the
// primitives in which a bucket differs from a directory. The save
// protocol (fallback, history, rotation, verify, sweep, steps) is package
// storage's, written once for every backend.
//
// A Store is a prefix of a bucket, s3://BUCKET/PREFIX; Store.Backend(ID)
// is the session ID, the objects under PREFIX/ID/. Object name N is the
// key PREFIX/ID/N, and the backend gives three of them a meaning:
//
//	session        the current manifest: only Commit writes it, conditionally
//	session.next   the lock: a lease, JSON naming its owner and its expiry
//	logs/STEP.log  the log of step STEP, apart from the other objects
//
// # The lease
//
// Lock creates session.next with If-None-Match: *, which fails if it
// exists. The lease names its owner, a random token and its duration,
// Options.LeaseDuration. While the writer holds it, a goroutine renews it
// every third of that duration with If-Match on the ETag of its last write,
// which fails if anyone broke it. A lease is stale when it has not been
// renewed for LeaseDuration+StaleGrace: its Last-Modified is compared with
// the Date of the response that returned it, both by the server's clock,
// so that no two machines' clocks are ever compared. (Only where the server
// sends no Date is the writer's renewal time compared with the reader's
// clock; their skew must then stay below StaleGrace.) BreakLock deletes a
// stale lease, or with force a live one, with If-Match on the ETag it
// judged, so that a lease renewed meanwhile is judged again, never deleted
// unseen; on a server that ignores If-Match on DELETE (see
// CheckConditionalWrites) it checks the ETag just before deleting instead,
// which leaves a window of one request. It then aborts the multipart
// uploads started before it judged the lease: the broken writer's.
//
// Held.Check costs no request while the lease was renewed less than half
// its duration ago; otherwise it renews the lease at once, which succeeds
// only if nobody broke it. A lease that could not be renewed for its whole
// duration is lost: another writer may have judged it stale.
//
// # The commit
//
// An expired lease proves only that its writer stopped renewing: it may be
// paused (SIGSTOP, a suspended VM) or cut off. Breaking it is safe all the
// same, because of how a save ends: Commit writes "session" with one
// PutObject conditional on the version the writer read (If-Match on its
// ETag; If-None-Match: * when there was none), which the server applies or
// refuses. A writer whose lease was broken and whose base another writer
// replaced can never overwrite it, and fails with a Lost
// *storage.LockedError. Every manifest differs in content, so every write
// has an ETag of its own and none comes back (no ABA). When the SDK retries
// a commit whose first attempt succeeded but whose response was lost, the
// retry fails its condition: Commit then reads "session" back and
// recognises its own bytes. It does the same when every attempt's response
// is lost, so that it never reports a failure for a commit that happened.
//
// Objects a save names (payloads) are written by Create before the commit:
// one PutObject up to Options.PartSize, else a multipart upload whose parts
// go up while the payload is read, completed with If-None-Match: *.
// Servers differ in what a completion does (versitygw answers 200 to the
// completion of an upload aborted meanwhile, and stores nothing), so after
// a completion Create reads the object's size back, and fails unless it is
// whole. A save that returned nil is therefore readable afterwards.
//
// # Guarantees
//
// On a server that passes CheckConditionalWrites and, like AWS S3 since
// 2020, reads its own writes (strong read-after-write and list
// consistency), the backend keeps the guarantees storage.Backend states:
// objects appear whole or not at all, Commit applies only over its base,
// and a lock reported stale belongs to a writer that can no longer commit
// over anyone. Ids are checked (Store.Backend refuses any that could name a
// key outside PREFIX/ID/), and so are object and step names.
//
// # Caveats
//
//   - A writer learns that its live lease was force-broken at its next
//     renewal, a third of a lease later. Until then, a Commit over a base
//     nobody replaced is applied: the conditional write keeps it from ever
//     overwriting another writer's commit, but not from landing while
//     another writer holds the lock.
//   - Destroy cannot delete a set of objects atomically: it deletes the
//     current manifest first, then every other object and unfinished
//     upload, and the lease last. Running it again finishes what a crashed
//     Destroy left.
//   - A log is written when its sink is closed: the log of a process that
//     dies before is lost, and up to MaxLogSize is held in memory.
//   - SweepTemp aborts no upload while a live writer holds the lease. A
//     bucket lifecycle rule that aborts incomplete multipart uploads after
//     a day is a good idea all the same.
//   - An object has at most 10,000 parts: PartSize × 10,000 bytes (78 GiB
//     with the default 8 MiB parts). Create holds at most Concurrency+1
//     parts in memory (40 MiB by default); Open holds up to 1 MiB, and
//     spools larger objects to an unlinked file in Options.TempDir.
//   - Objects have no permission bits: access is the bucket policy's.
//   - Without a successful CheckConditionalWrites, DELETE is assumed to
//     honour If-Match.
//
// # Requests and errors
//
// Lock, Commit, Release, ReadHead, Put, Check and a small Create are one
// request each (Release two on a server that ignores If-Match on DELETE);
// Open is one GET; CheckConditionalWrites is one GET once a check is
// recorded, some fifteen requests otherwise. Configuration comes from the
// AWS SDK's standard chain (AWS_* variables, shared config and credentials
// files; AWS_ENDPOINT_URL_S3, or endpoint_url in the config file, for
// another endpoint) with Options on top. Buckets are addressed path-style,
// as most servers other than AWS need, when an endpoint is configured,
// wherever from (Options.PathStyle decides otherwise). Transient failures
// (network errors, 5xx, 503 SlowDown) are retried by the SDK's standard
// retryer, Options.MaxAttempts times (else as the configuration's
// max_attempts says, else 6) with jittered exponential backoff up to
// Options.MaxBackoff; an attempt fails if connecting takes 10 seconds or
// the response headers 60. A name that does not resolve, and a failed TLS
// handshake, are not retried. A request that still fails is an *Error
// whose one-line message names the bucket, the operation, the key and the
// reason, and which wraps ErrNoBucket, ErrAccess (missing, rejected or
// expired credentials) or ErrUnavailable where one applies; a request that
// got no answer at all says what failed, and with which host, and wraps
// ErrResolve, ErrRefused, ErrTimeout or ErrTLS as well. A missing object is
// an error wrapping fs.ErrNotExist, a missing session storage.ErrNotFound.
// The package never prints: the SDK's warnings go to Options.Warn, or
// nowhere, and its debug output nowhere.
package s3store
