// Package storage keeps one checkpointed session: it saves checkpoints so that
// each is all old or all new, loads only checkpoints that pass their integrity
// check, and reports who holds a session's lock.
//
// Session is the interface every backend offers; Dir is the local one, a
// session directory on a POSIX file system holding two names:
//
//	session       the current checkpoint (see package checkpoint)
//	session.next  the checkpoint being written; its existence is the lock
//
// A save creates session.next with O_CREAT|O_EXCL|O_NOFOLLOW, takes an flock on
// it, writes the header (which names the owner: pid, host, user, start time and
// command), reads the current generation, streams the payload, fsyncs,
// re-checks that session.next is still the file it created, renames it over
// session and fsyncs the directory. Every failure before the rename removes
// session.next and leaves session untouched; every failure is returned, none
// is swallowed.
//
// A session.next found by anyone but its writer means a writer is active or
// has crashed. Its flock tells the two apart: a live writer holds it until its
// rename, and the kernel releases it when the writer dies. A session.next
// whose flock is free and whose owner is recorded is therefore provably stale,
// and so is one whose owner ran on this host under a pid that no longer
// exists. A file with a free flock but no owner yet is given a short grace
// period, since its writer may be between its create and its flock.
//
// The guarantees rest on rename(2) being atomic and on fsync(2) reaching
// stable storage, as on local ext4, xfs, btrfs and tmpfs. flock(2) is not
// reliable on every network file system; on NFS, staleness cannot be proved.
package storage
