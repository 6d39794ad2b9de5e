package auditlog

import (
	"os"
	"syscall"
)

// fdatasync flushes f's data, and only the metadata needed to read it back.
// Segments are preallocated, so a commit changes no metadata at all.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
