//go:build unix

package cli

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/server"
)

// endlessFile makes a FIFO whose writer sends up to 64 MiB, as /dev/zero
// or a huge file would, and returns its path and a function that waits
// for the writer and says how many bytes the reader took.
func endlessFile(t *testing.T, dir, name string) (string, func() int64) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	done := make(chan int64, 1)
	go func() {
		var n int64
		defer func() { done <- n }()
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for n < 64<<20 {
			w, err := f.Write(buf)
			n += int64(w)
			if err != nil {
				return // the reader closed it
			}
		}
	}()
	wait := func() int64 {
		// A reader that never opened it leaves the writer blocked in
		// open: open and close it once to let it go.
		if r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); err == nil {
			r.Close()
		}
		return <-done
	}
	return path, wait
}

// TestAuditFilesReadBounded: the verifier key (--key, or a data
// directory's log-signing.pub) and a witness checkpoint (--witness, or a
// data directory's checkpoint) are read only up to a bound. Read whole,
// `airlock audit verify-bundle FILE --key /dev/zero` ran out of memory
// and crashed with a runtime dump; so did audit verify with --witness
// naming such a file, or offline on a directory whose files are links to
// one (a directory it is told not to trust).
func TestAuditFilesReadBounded(t *testing.T) {
	const most = 8 << 20 // the bound, plus what a pipe holds, is far below
	dir := t.TempDir()
	bundle := filepath.Join(dir, "bundle.json")
	if err := os.WriteFile(bundle, []byte("{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	_, vkey, err := note.GenerateKey(rand.Reader, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dataDir, server.DatabaseFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args func(path string) []string
		file string // in dataDir, else in dir
	}{
		{"verify-bundle --key", func(p string) []string { return []string{"audit", "verify-bundle", bundle, "--key", p} }, ""},
		{"verify --key", func(p string) []string { return []string{"audit", "verify", "--data-dir", dataDir, "--key", p} }, ""},
		{"verify --witness", func(p string) []string {
			return []string{"audit", "verify", "--data-dir", dataDir, "--witness", p}
		}, ""},
		{"verify --data-dir with its key endless", func(string) []string { return []string{"audit", "verify", "--data-dir", dataDir} }, auditlog.VerifierKeyFile},
		{"verify --data-dir with its witness endless", func(string) []string {
			return []string{"audit", "verify", "--data-dir", dataDir, "--key", vkey}
		}, server.WitnessFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			where, name := dir, "endless"
			if tc.file != "" {
				where, name = dataDir, tc.file
			}
			path, wait := endlessFile(t, where, name)
			defer os.Remove(path)
			code, out, errOut := run(t, nil, tc.args(path)...)
			if n := wait(); n > most {
				t.Errorf("read %d bytes of the file (exit %d: %s%s)", n, code, out, errOut)
			}
			if code == 0 {
				t.Errorf("exit 0: %s%s", out, errOut)
			}
		})
	}
}
