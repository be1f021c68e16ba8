// Package storage keeps one checkpointed session: it saves checkpoints so that
// each is all old or all new, loads only checkpoints that pass their integrity
// check, and reports who holds a session's lock.
//
// A Session is the protocol, written once; a Backend stores its objects: Dir,
// a local directory, or an S3 prefix (package s3store). A session holds:
//
//	session         the current manifest (format 2, see package checkpoint):
//	                metadata, and the name, size and SHA-256 of the payload
//	session.next    the writer's lock; a leftover one means a writer is
//	                active or has crashed
//	session.<n>     the manifests of kept generations
//	payload-<hex>   payloads, immutable, shared by every generation that
//	                names them
//	logs/<step>.log the logs of steps
//
// A save takes the lock, reads the current manifest under it (and checks
// IfGeneration), writes the payload as a new object — while, on S3, the
// manifest it replaces is written as history — and then commits the new
// manifest with the backend's one conditional primitive, Commit: it applies
// only if the lock is still this writer's and the current manifest is still
// the one it read. The payload is stored whole before the manifest that
// names it exists, so a committed manifest never names a missing or partial
// payload. After the commit the save removes what no kept generation
// reaches and releases the lock. Every failure before the commit removes
// what the save wrote and leaves the session as it was; every failure is
// returned, none is swallowed.
//
// A generation that changes metadata only (KeepPayload: a step record, a
// flag, a title) names the payload of the one before: it reads, hashes and
// writes no payload byte. History keeps, besides the current generation,
// the newest manifest before it (so that a damaged current manifest falls
// back to the payload it shares) and the newest manifest of each of the
// Keep-1 payloads before, so that metadata-only generations never push a
// payload out.
//
// Load verifies before it hands out the first byte: the payload object
// against the manifest's size and SHA-256. When the current generation is
// damaged it falls back to the newest intact kept one. A reader never blocks
// and never sees a partial object; if writers commit and prune under it, it
// starts over.
//
// Sessions written by format 1 (a single file holding header and payload)
// stay readable: Load, History, Verify and Stat read them, and the next save
// writes format 2, keeping the format-1 files as history.
//
// Locally, the guarantees rest on rename(2) being atomic and on fsync(2)
// reaching stable storage, as on local ext4, xfs, btrfs and tmpfs; a lock's
// staleness is proved by its flock, which is not reliable on every network
// file system. On S3 they rest on the server honouring If-Match and
// If-None-Match on PutObject, which s3store checks before it is used.
package storage
