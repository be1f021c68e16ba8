package cmd

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ckpt-dev/ckpt/pkg/storage"
)

// A transaction of 'ckpt run' shares its files with the commands it runs
// through a private directory named by $CKPT_TXN. A ckpt started inside the
// transaction that loads or saves the same session reads and writes those
// files instead of taking the session's lock, which the transaction holds:
// load sees what the transaction saved so far, save replaces it.
const envTxn = "CKPT_TXN"

// sessionLocation names a session the same way in every process: its
// repository's directory or s3:// URL, a slash, its id.
func sessionLocation(repo, id string) string { return repo + "/" + id }

// txnFile describes a transaction in its directory, as txn.json.
type txnFile struct {
	// Session is where the session is; see sessionLocation.
	Session string `json:"session"`
	// Base is the generation the transaction started from.
	Base uint64 `json:"base"`
	// Checkpoint holds the base generation's payload; Next is where the
	// transaction's new payload goes.
	Checkpoint string `json:"checkpoint"`
	Next       string `json:"next"`
}

const txnJSON = "txn.json"

// writeTxn records t in the transaction directory dir.
func writeTxn(dir string, t *txnFile) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, txnJSON), b, 0o600)
}

// txnFor returns the transaction this process runs inside of, if it is on
// the session with the given id; nil otherwise. A $CKPT_TXN that does not
// name a private directory of this user is ignored.
func (a *app) txnFor(id string) (*txnFile, error) {
	dir := a.getenv(envTxn)
	if dir == "" {
		return nil, nil
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() || fi.Mode().Perm()&0o077 != 0 {
		return nil, nil // the transaction is over, or this is not one
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, txnJSON))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read transaction: %w", err)
	}
	var t txnFile
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("read transaction %s: %w", dir, err)
	}
	repo, err := a.repoPath()
	if err != nil {
		return nil, err
	}
	if t.Session != sessionLocation(repo, id) {
		return nil, nil
	}
	return &t, nil
}

// open returns the transaction's current payload: what it saved so far,
// else the base generation's.
func (t *txnFile) open(id string) (*os.File, error) {
	f, err := os.Open(t.Next)
	if errors.Is(err, fs.ErrNotExist) {
		if t.Base == 0 {
			return nil, fmt.Errorf("session %s: %w", id, storage.ErrNoCheckpoint)
		}
		f, err = os.Open(t.Checkpoint)
	}
	return f, err
}

// save replaces the transaction's payload with r, atomically. An empty r
// leaves it as it was, unless allowEmpty.
func (t *txnFile) save(id string, r io.Reader, allowEmpty bool) error {
	br := bufio.NewReader(r)
	if _, err := br.Peek(1); errors.Is(err, io.EOF) && !allowEmpty {
		return fmt.Errorf("session %s: %w", id, storage.ErrEmpty)
	}
	return writeFileAtomically(t.Next, br)
}
