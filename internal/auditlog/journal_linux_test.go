package auditlog

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// On a filesystem with O_DIRECT the journal's segments are written with
// it (whole aligned blocks, see journal.write), and frames still replay.
func TestJournalUsesDirectIO(t *testing.T) {
	f := newJournalFixture(t)
	l := f.mustOpen(t, f.opts())
	flags, _, errno := syscall.Syscall(syscall.SYS_FCNTL, l.jr.cur.f.Fd(), syscall.F_GETFL, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if flags&syscall.O_DIRECT == 0 {
		// Only a filesystem without O_DIRECT excuses it.
		probe, err := os.OpenFile(filepath.Join(f.dir, "probe"), os.O_RDWR|os.O_CREATE|syscall.O_DIRECT, 0o600)
		if err == nil {
			probe.Close()
			t.Fatalf("the segment is open without O_DIRECT (flags %#x) on a filesystem that has it", flags)
		}
		t.Skipf("the test's temporary directory has no O_DIRECT: %v", err)
	}
	if err := l.Append(context.Background(), events(3, "d")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, 3)
}
