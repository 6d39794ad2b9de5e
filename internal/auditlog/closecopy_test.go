package auditlog

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCloseCopyIsBounded: Close copies what the journal holds into the
// store within CloseCopyTimeout, not for as long as the store takes. Here
// another connection (another airlock command, a backup) holds the
// database's write lock: each copy waited out SQLite's busy timeout (10 s)
// and Close tried three times, holding airlock serve's stop for 30 s. The
// driver does not end a busy wait at its context's deadline, so one such
// wait still runs to its end: the bound is CloseCopyTimeout or one busy
// timeout, whichever is longer. What is not copied stays in the journal,
// and the next Open copies it: nothing acknowledged is lost.
func TestCloseCopyIsBounded(t *testing.T) {
	f := newJournalFixture(t)
	o := f.opts()
	o.CloseCopyTimeout = 300 * time.Millisecond
	l := f.mustOpen(t, o)
	ctx := context.Background()
	if err := l.Append(ctx, events(3, "stored")...); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	other, err := rawDB(t, filepath.Join(f.dir, "airlock.db")).Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if err := l.Append(ctx, events(4, "journaled")...); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	t0 := time.Now()
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		if err == nil || !strings.Contains(err.Error(), "stay in the journal") {
			t.Fatalf("Close with the database locked: %v, want an error saying the entries stay in the journal", err)
		}
		// One busy timeout, with slack for a loaded machine; three
		// were 30 s.
		if d := time.Since(t0); d > 10*time.Second+o.CloseCopyTimeout+5*time.Second {
			t.Fatalf("Close took %v", d)
		}
	case <-time.After(25 * time.Second):
		t.Fatal("Close with the database locked had not returned after 25 s")
	}
	if _, err := other.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.st.LogSize(ctx); n != 3 {
		t.Fatalf("the store holds %d entries, want the 3 copied before it was locked", n)
	}

	l = f.mustOpen(t, f.opts())
	if l.Size() != 7 {
		t.Fatalf("reopened, the log holds %d entries, want 7", l.Size())
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	f.verify(t, 7)
}
