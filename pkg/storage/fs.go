package storage

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// fileSystem is the seam through which a save's file-system operations go,
// so that tests can fail any one of them (see fault_test.go). Production
// code uses osFS, whose methods are the os calls themselves; the cost is an
// interface call per operation next to an fsync.
type fileSystem interface {
	// CreateExcl creates name with O_CREAT|O_EXCL|O_NOFOLLOW.
	CreateExcl(name string, perm os.FileMode) (file, error)
	Rename(oldpath, newpath string) error
	Link(oldpath, newpath string) error
	Remove(name string) error
	SyncDir(dir string) error
}

// file is the part of *os.File that a save uses.
type file interface {
	io.Writer
	Sync() error
	Close() error
	// OS returns the underlying *os.File, for flock and fstat, which are
	// not failure points of a save.
	OS() *os.File
}

type osFS struct{}

type osFile struct{ *os.File }

func (f osFile) OS() *os.File { return f.File }

func (osFS) CreateExcl(name string, perm os.FileMode) (file, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }
func (osFS) Link(oldpath, newpath string) error   { return os.Link(oldpath, newpath) }
func (osFS) Remove(name string) error             { return os.Remove(name) }

func (osFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}
