//go:build !unix

package auditlog

import "os"

// Without flock, the journal relies on the database's own locking.
func lockFile(f *os.File) error { return nil }
func unlockFile(f *os.File)     {}
