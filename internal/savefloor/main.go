// Command savefloor is the least a process that saves a checkpoint can do,
// the floor that BenchmarkStartup measures 'ckpt save' against. It is a
// static Go program with none of ckpt's code:
//
//	savefloor FILE DIR
//
// reads FILE, creates DIR/session.next exclusively, writes what it read,
// fsyncs it, renames it over DIR/session, fsyncs DIR and exits: the system
// calls of a save with nothing around them. Without arguments it exits at
// once, which is what starting a Go program costs at all.
package main

import (
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	if len(os.Args) == 1 {
		return
	}
	if len(os.Args) != 3 {
		os.Stderr.WriteString("usage: savefloor [FILE DIR]\n")
		os.Exit(2)
	}
	if err := save(os.Args[1], os.Args[2]); err != nil {
		os.Stderr.WriteString("savefloor: " + err.Error() + "\n")
		os.Exit(1)
	}
}

func save(file, dir string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	next, cur := filepath.Join(dir, "session.next"), filepath.Join(dir, "session")
	f, err := os.OpenFile(next, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(next, cur); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
