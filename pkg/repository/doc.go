// Package repository manages a set of sessions, in a local directory (Open)
// or under a prefix of an S3 bucket (OpenS3): it creates them under
// unguessable ids, lists them, opens them by id, removes them, finds the
// youngest that matches (Last) and collects idle ones (GC).
//
// A session id is the name of a directory directly inside the repository:
// lowercase letters, digits, '-', '_' and '.', not starting with '.', at most
// MaxIDLen characters. No id can name a path outside the repository, and a
// session directory that is a symbolic link is refused rather than followed.
//
// Create claims a new id with a single mkdir(2) (on S3, a conditional
// create), which fails if the name exists, so two processes can never get
// the same session; the random part of
// the id comes from crypto/rand. Names starting with '.' are never sessions:
// Remove renames a session to a hidden trash name before deleting it, so that
// listings never show a half-removed session.
//
// List keeps working while other processes create and remove sessions, and
// reports a damaged entry as damaged without failing the whole listing.
//
// A local repository directory and everything in it are created with mode
// 0700 (directories) and 0600 (files).
package repository
