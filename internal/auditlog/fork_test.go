package auditlog

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestSharedLogForkKeepsWitness: the log's tail is deleted with its
// checkpoints (or the database restored from an older copy), and a replica
// that never saw it (a new one, with an empty data_dir) grows the log past
// where it was. A replica that saw the old tail must not replace its
// witness file with the new, bigger, validly signed head, which does not
// extend what it saw: that would erase the only evidence of the
// truncation. It stops writing. (Found by the replicas review helper,
// whose check under the writers' lock this follows off the lock.)
func TestSharedLogForkKeepsWitness(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, v := testKey(t)
	a := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 0))
	b := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 1))
	for range 10 {
		if err := a.Append(ctx, Event{Type: "test.append", Actor: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Append(ctx, Event{Type: "test.append", Actor: "b"}); err != nil {
		t.Fatal(err)
	}
	witnessB := filepath.Join(dir, "checkpoint-1")
	var before []byte
	waitFor(t, 5*time.Second, "B's witness file at 11 entries", func() bool {
		before, _ = os.ReadFile(witnessB)
		return strings.Contains(string(before), "\n11\n")
	})

	// The tail from entry 5 goes, with its checkpoints.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM log_entries WHERE seq >= 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM log_checkpoints WHERE size > 5"); err != nil {
		t.Fatal(err)
	}
	// A new replica grows the log again, past B's size.
	c := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 2))
	for range 10 {
		if err := c.Append(ctx, Event{Type: "test.append", Actor: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	if c.Size() != 15 {
		t.Fatalf("C's size %d, want 15", c.Size())
	}

	// B may sign one batch on top of the new head before its witness
	// writer checks it; the file never takes it, and B stops writing.
	_ = b.Append(ctx, Event{Type: "test.append", Actor: "b"})
	waitFor(t, 5*time.Second, "B's witness writer to find the fork", func() bool { return b.forked.Load() != nil })
	after, err := os.ReadFile(witnessB)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("B's witness file was replaced by a checkpoint that does not extend it:\n%s\nnow\n%s", before, after)
	}
	if err := b.Append(ctx, Event{Type: "test.append", Actor: "b"}); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("B went on writing over a head that does not extend the log it saw: %v (size %d)", err, b.Size())
	}
	if err := b.Close(); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("B's Close: %v, want the fork reported", err)
	}
}

// TestSharedLogForkCaughtAfterRestart: the same truncation and regrowth
// while the replica that saw the old tail is down. At its start its
// witness file is older than the head (which Open alone lets pass); the
// frontier kept beside the file lets it check that the head extends what
// it saw, so it keeps the file and refuses to write.
func TestSharedLogForkCaughtAfterRestart(t *testing.T) {
	dsn := pgDatabase(t)
	dir := t.TempDir()
	ctx := context.Background()
	s, v := testKey(t)
	a := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 0))
	b := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 1))
	for range 10 {
		if err := a.Append(ctx, Event{Type: "test.append", Actor: "a"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Append(ctx, Event{Type: "test.append", Actor: "b"}); err != nil {
		t.Fatal(err)
	}
	witnessB := filepath.Join(dir, "checkpoint-1")
	waitFor(t, 5*time.Second, "B's witness file at 11 entries", func() bool {
		b, _ := os.ReadFile(witnessB)
		return strings.Contains(string(b), "\n11\n")
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(witnessB)
	if err != nil {
		t.Fatal(err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DELETE FROM log_entries WHERE seq >= 5"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "DELETE FROM log_checkpoints WHERE size > 5"); err != nil {
		t.Fatal(err)
	}
	c := openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 2))
	for range 10 {
		if err := c.Append(ctx, Event{Type: "test.append", Actor: "c"}); err != nil {
			t.Fatal(err)
		}
	}

	b = openLog(t, openPG(t, dsn), s, replicaOptions(dir, v, 1))
	waitFor(t, 5*time.Second, "the restarted B's witness writer to find the fork", func() bool { return b.forked.Load() != nil })
	if err := b.Append(ctx, Event{Type: "test.append", Actor: "b"}); err == nil || !strings.Contains(err.Error(), "does not extend") {
		t.Errorf("the restarted B wrote over a head that does not extend the log it saw: %v", err)
	}
	_ = b.Close()
	after, err := os.ReadFile(witnessB)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("the restarted B's witness file was replaced:\n%s\nnow\n%s", before, after)
	}
}
