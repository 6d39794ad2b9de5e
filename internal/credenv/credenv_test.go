//go:build unix

package credenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
)

var testCA = grants.Credentials{Endpoint: &grants.Endpoint{CAPEM: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}}

// Without a cache directory the CA file goes into a directory of this
// user's in the shared temporary directory, which must be private: one
// another user made in advance (world-writable) would let them swap the
// CA the client trusts. Before, /tmp/airlock was used as found.
func TestWriteCARefusesSharedDirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("HOME", "")
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("TMPDIR", tmp)
	dir := filepath.Join(tmp, "airlock-"+strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if p, err := WriteCA(testCA); err == nil || !strings.Contains(err.Error(), "may be written by others") {
		t.Fatalf("WriteCA into a world-writable directory: %q, %v", p, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(t.TempDir(), dir); err != nil {
		t.Fatal(err)
	}
	if p, err := WriteCA(testCA); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("WriteCA through a symlink: %q, %v", p, err)
	}
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	p, err := WriteCA(testCA)
	if err != nil || filepath.Dir(p) != dir {
		t.Fatalf("WriteCA: %q, %v; want a file in %s", p, err, dir)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("%s: %v, %v; want mode 0700", dir, fi.Mode(), err)
	}
}
