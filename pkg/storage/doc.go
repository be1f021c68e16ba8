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
// A save prepares its lock file privately: it creates a ".tmp-" file, takes
// an flock on it and writes the checkpoint header, which names the owner
// (pid, host, user, start time, command). It then link(2)s the file to
// session.next, which, like O_CREAT|O_EXCL, fails if session.next exists, so
// that only one writer holds the lock and session.next never exists without
// its owner and its flock. Under the lock it reads the current generation
// (and checks IfGeneration), streams the payload, fsyncs, keeps the
// generation it replaces as the hard link session.<generation> (see Keep),
// re-checks that session.next is still the file it created, renames it over
// session and fsyncs the directory. Every failure before the rename removes
// session.next and leaves session untouched; every failure is returned, none
// is swallowed. A Tx (Begin, Lock, Run) holds the lock between the read and
// the write of a read-modify-write.
//
// A session.next found by anyone but its writer means a writer is active or
// has crashed. Its flock tells the two apart: a live writer holds it until its
// rename, and the kernel releases it when the writer dies. A session.next
// whose flock is free is therefore provably stale. A held flock always means
// a live writer, even if its pid is not visible from here (another pid
// namespace). Only where the file system cannot tell (flock unsupported) is a
// pid that no longer exists on the writer's host taken as proof. A file
// without an owner (not made by ckpt) is given a short grace period.
//
// A writer whose lock was broken (BreakLock with force) notices before it
// changes anything and fails with a LockedError whose Lost is set. A forced
// break can still race with a writer between that check and its rename:
// force is for writers known to be gone.
//
// The guarantees rest on rename(2) being atomic and on fsync(2) reaching
// stable storage, as on local ext4, xfs, btrfs and tmpfs. flock(2) is not
// reliable on every network file system; on NFS, staleness cannot be proved.
package storage
