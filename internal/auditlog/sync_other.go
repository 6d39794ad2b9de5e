//go:build !linux

package auditlog

import "os"

func fdatasync(f *os.File) error { return f.Sync() }

// openDirect opens a journal segment for writing (without O_DIRECT, which
// is Linux's).
func openDirect(path string) (*os.File, error) { return os.OpenFile(path, os.O_RDWR, 0) }
