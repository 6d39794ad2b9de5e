package benchkit

import (
	"os"
	"syscall"
)

// fdatasync is the journal's durable write on Linux.
func fdatasync(f *os.File) error { return syscall.Fdatasync(int(f.Fd())) }
