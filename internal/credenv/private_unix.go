//go:build unix

package credenv

import (
	"fmt"
	"os"
	"syscall"

	"github.com/airlock-dev/airlock/internal/fsperm"
)

// private refuses dir unless it is a directory (not a link to one) owned by
// this user that neither group nor others may write to.
func private(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to another user (uid %d)", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s may be written by others (mode %s); chmod go-w it", dir, fsperm.Mode(fi.Mode()))
	}
	return nil
}
