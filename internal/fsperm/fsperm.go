// Package fsperm reads the files that decide who gets access (the
// configuration, the policies) only when not every user of the machine may
// write them: whoever may write such a file grants themselves access.
// Group write is left to the operator, who may share the files with a
// team.
package fsperm

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

// WritableError is the error of a file or directory every user may write.
type WritableError struct {
	Path string
	Mode os.FileMode
}

func (e *WritableError) Error() string {
	return fmt.Sprintf("%s may be written by anyone (mode %s); chmod o-w it", e.Path, Mode(e.Mode))
}

// Mode formats m for a message as ls would its type and permissions:
// drwxrwxrwx for a directory, -rw-rw-rw- for a file. m.Perm() alone drops
// the type, so that a directory read as a file (-rwxrwxrwx); m itself
// would put setuid, setgid and sticky letters before the type (dtrwxrwxrwx).
func Mode(m os.FileMode) string {
	return (m.Type() | m.Perm()).String()
}

// OthersMayWrite reports whether every user may write fi (o+w).
func OthersMayWrite(fi os.FileInfo) bool {
	return runtime.GOOS != "windows" && fi.Mode().Perm()&0o002 != 0
}

// CheckDir returns a *WritableError if every user may write the
// directory dir; nil otherwise (including when it cannot be read: the
// caller's own read reports that).
func CheckDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && OthersMayWrite(fi) {
		return &WritableError{Path: dir, Mode: fi.Mode()}
	}
	return nil
}

// ReadFile reads at most limit bytes of path, or returns a
// *WritableError if every user may write it. The mode is checked on the
// open file, so that the file cannot be swapped between the check and the
// read.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if OthersMayWrite(fi) {
		return nil, &WritableError{Path: path, Mode: fi.Mode()}
	}
	return io.ReadAll(io.LimitReader(f, limit))
}
