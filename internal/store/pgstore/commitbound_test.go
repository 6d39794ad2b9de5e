package pgstore

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestCommitOutcomeCheckIsBounded: a COMMIT whose connection breaks while
// the database is out of reach (a partition: the client's connection is
// reset, new ones are accepted but never answered) is reported with
// store.ErrCommitUnknown once OutcomeTimeout has passed. The outcome check
// used to retry until the store was closed, holding the writer, and every
// caller of the batch, as long.
func TestCommitOutcomeCheckIsBounded(t *testing.T) {
	ctx := t.Context()
	const bound = 500 * time.Millisecond
	s, px, _ := openProxied(t, Options{OutcomeTimeout: bound})

	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutIdentity(ctx, model.Identity{Name: "unknown", Kind: model.Agent}); err != nil {
		t.Fatal(err)
	}
	px.unreachableFromNow()
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- tx.Commit() }()
	time.Sleep(100 * time.Millisecond) // the COMMIT is sent, and dropped
	px.resetClients()
	select {
	case err := <-done:
		d := time.Since(t0)
		t.Logf("Commit returned after %v: %v", d.Round(time.Millisecond), err)
		if !errors.Is(err, store.ErrCommitUnknown) {
			t.Fatalf("Commit with the database out of reach: %v, want ErrCommitUnknown", err)
		}
		// The bound, with slack for a loaded machine.
		if d > bound+3*time.Second {
			t.Fatalf("Commit took %v to give up, with OutcomeTimeout %v", d, bound)
		}
	case <-time.After(15 * time.Second):
		s.Close() // ends the check, so that the test can end
		<-done
		t.Fatalf("Commit had not returned 15 s after its connection broke (OutcomeTimeout %v)", bound)
	}
}

// TestStuckCommitIsEnded: a COMMIT round trip that waits on a table another
// session holds locked (the log's, which CommitLogCheckpoint's entries go
// to ahead of the COMMIT) is ended at CommitTimeout, and its outcome is
// known at once: the transaction's server process, which had not noticed
// that its connection was closed, is ended, so the transaction is aborted
// and Commit reports it failed, not unknown. Nothing of it is committed,
// not even once the table is unlocked (the process would have run the
// COMMIT it was sent), and the writers' lock it held is free for the next
// writer while the table is still locked. The COMMIT used to wait for as
// long as the table was locked.
func TestStuckCommitIsEnded(t *testing.T) {
	ctx := t.Context()
	const bound = 300 * time.Millisecond
	s, px, dsn := openProxied(t, Options{CommitTimeout: bound, OutcomeTimeout: 3 * time.Second})
	// pgx sends a cancel request as it closes a connection whose statement
	// is in flight, which usually ends the wait on the lock before the
	// COMMIT runs: that cancel is best effort (fire and forget, on a
	// connection of its own), here lost.
	px.dropCancelRequests()

	prepareEverywhere(t, s)
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ptx := tx.(*Tx)
	if err := ptx.PutIdentity(ctx, model.Identity{Name: "stuck", Kind: model.Agent}); err != nil {
		t.Fatal(err)
	}
	lock := testenv.LockPostgresTables(t, dsn, "log_entries")
	done := make(chan error, 1)
	t0 := time.Now()
	go func() { done <- ptx.CommitLogCheckpoint(logEntries(0, 2), logCheckpoint(2)) }()
	select {
	case err := <-done:
		d := time.Since(t0)
		t.Logf("Commit returned after %v: %v", d.Round(time.Millisecond), err)
		if err == nil || errors.Is(err, store.ErrCommitUnknown) {
			t.Fatalf("a COMMIT stuck on a lock: %v, want it failed (aborted)", err)
		}
		if d > bound+3*time.Second {
			t.Fatalf("Commit took %v, with CommitTimeout %v", d, bound)
		}
	case <-time.After(15 * time.Second):
		lock.Rollback(ctx)
		<-done
		t.Fatalf("Commit had not returned 15 s into a wait on a lock (CommitTimeout %v)", bound)
	}

	nextWriterWhileLocked(t, s, lock, "stuck")
	if n, err := s.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("log size %d (%v), want 0", n, err)
	}
}

// TestCutStatementFreesTheWritersLock: a statement of a write transaction
// cut by its context while it waits on a table another session holds
// locked (as the audit log's BatchTimeout cuts a stuck batch), whose
// cancel request is lost, leaves no server process holding the writers'
// lock: Rollback ends the transaction's process, so the next writer gets
// the lock while the table is still locked, and nothing of the
// transaction is committed. The process used to wait on the table, the
// writers' lock held, for as long as the table was locked.
func TestCutStatementFreesTheWritersLock(t *testing.T) {
	ctx := t.Context()
	s, px, dsn := openProxied(t, Options{})
	px.dropCancelRequests() // as in TestStuckCommitIsEnded
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutIdentity(ctx, model.Identity{Name: "before", Kind: model.Agent}); err != nil {
		t.Fatal(err)
	}
	lock := testenv.LockPostgresTables(t, dsn, "sessions")
	sctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err = tx.PutSession(sctx, model.Session{ID: "s_1", GrantID: "g_1", StartedAt: time.Now()})
	cancel()
	if err == nil {
		t.Fatal("a statement on a locked table succeeded")
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	nextWriterWhileLocked(t, s, lock, "before")
}

// nextWriterWhileLocked checks that a writer gets the writers' lock within
// 5 s while lock still holds the table a failed transaction waited on,
// then releases lock and checks that the identity the failed transaction
// wrote is not stored.
func nextWriterWhileLocked(t *testing.T, s *Store, lock pgx.Tx, identity string) {
	t.Helper()
	ctx := t.Context()
	bctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	next, err := s.Begin(bctx)
	if err != nil {
		t.Fatalf("the next writer, with the table still locked: %v (the writers' lock is still held)", err)
	}
	if err := next.Rollback(); err != nil {
		t.Fatal(err)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Identity(ctx, identity); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the failed transaction's identity: %v, want ErrNotFound", err)
	}
}

// prepareEverywhere prepares the statement CommitLogCheckpoint sends with
// the COMMIT on every connection of s's pool, as on a replica that has run
// a few batches: a COMMIT's round trip is then the first the batch's
// commit sends, not the statement's preparation.
func prepareEverywhere(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	var conns []*pgxpool.Conn
	for range s.pool.Config().MaxConns {
		c, err := s.pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Conn().Prepare(ctx, "airlock_commit_log_checkpoint", commitLogCheckpointSQL); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range conns {
		c.Release()
	}
}

// openProxied opens a store with o on a fresh schema through a silencer,
// closed when t ends, and returns it, the proxy and the schema's DSN
// (direct).
func openProxied(t *testing.T, o Options) (*Store, *silencer, string) {
	t.Helper()
	dsn := freshDB(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	px := newSilencer(t, u.Host)
	s, err := OpenWith(t.Context(), px.via(t, dsn), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, px, dsn
}

// TestEndXactMatchesItsProcess: the outcome check ends a server process
// only if it is the one that ran the transaction and still runs it. After
// a crash, a transaction id that never reached the disk may be given
// again, to another session: that session, running "our" transaction id
// under another pid, is not ended for it; the process that does run it
// is.
func TestEndXactMatchesItsProcess(t *testing.T) {
	ctx := t.Context()
	s, dsn := openFresh(t)
	conn := func() (*pgx.Conn, pgx.Tx, int64, int32) {
		t.Helper()
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var xid int64
		var pid int32
		if err := tx.QueryRow(ctx, "SELECT pg_current_xact_id()::text::bigint, pg_backend_pid()").Scan(&xid, &pid); err != nil {
			t.Fatal(err)
		}
		return c, tx, xid, pid
	}
	_, _, _, otherPid := conn() // a live process of the same role
	c, tx, xid, pid := conn()   // the session now running xid
	s.endXact(ctx, xid, otherPid)
	if err := tx.Commit(ctx); err != nil || c.IsClosed() {
		t.Fatalf("the session running the transaction id under another pid was ended: %v", err)
	}

	c, tx, xid, pid = conn()
	s.endXact(ctx, xid, pid)
	if err := tx.Commit(ctx); err == nil {
		t.Fatal("the process running the transaction was not ended")
	}
}

// TestSlowFlushIsWaitedFor: a flush slower than CommitTimeout (the wait
// for the disk, or with remote_apply for a synchronous standby's replay,
// which may lag by up to 30 s) is cut in the COMMIT's round trip, and the
// outcome check's flushes, each given twice as long as the one before,
// get it done: Commit succeeds. With every try bounded alike (5 s) a
// flush slower than that never succeeded, and Commit said the outcome was
// unknown, where before the COMMIT's round trip was bounded it waited.
func TestSlowFlushIsWaitedFor(t *testing.T) {
	ctx := t.Context()
	s, err := OpenWith(ctx, freshDB(t), Options{CommitTimeout: 300 * time.Millisecond, OutcomeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	// A flush of 0.5 s, tries from 0.2 s (attemptTimeout is 5 s).
	s.flushSQL = "SELECT pg_sleep(0.5), pg_logical_emit_message(true, 'airlock', '')"
	s.attemptTimeout = 200 * time.Millisecond
	tx, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutIdentity(ctx, model.Identity{Name: "slow", Kind: model.Agent}); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := tx.Commit(); err != nil {
		t.Fatalf("Commit with a flush of 0.5 s: %v", err)
	}
	t.Logf("Commit took %v", time.Since(t0).Round(time.Millisecond))
	if _, err := s.Identity(ctx, "slow"); err != nil {
		t.Fatal(err)
	}
}
