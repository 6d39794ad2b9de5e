// Package safefile writes the small files whose loss or half-written state
// would mislead a reader later: a witness of the audit log's size, a
// cosigned checkpoint, a signing key, the gateways' TLS certificate and
// keys. The audit log, the witness and the server keys each wrote them
// with a copy of the same code (tlscert with a weaker one); one copy keeps
// the sync, mode and clean-up rules the same for all of them.
package safefile

import (
	"os"
	"path/filepath"
)

// WriteAtomic replaces path with data: it writes a temporary file next to
// path, sets its mode to perm, syncs it and renames it over path, then syncs
// the directory (best effort) so that the rename survives a crash. A reader
// sees the old file or the new one, never a part of either. On an error the
// temporary file is removed and path is left as it was.
func WriteAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// CreateExclusive creates path with mode perm (less the umask) and writes
// data to it, synced, failing with an error matching fs.ErrExist if path
// exists: a key is made once and never overwritten. On any other error the
// partly written file is removed, so that the next start makes it again
// rather than reading a truncated key.
func CreateExclusive(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}
