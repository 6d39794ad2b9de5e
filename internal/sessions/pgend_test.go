package sessions

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// TestEndOnAStuckPostgresCommit: a session's End on a PostgreSQL store
// shared by replicas, whose COMMIT waits on a table another session holds
// locked (the log's), returns with an error at the store's CommitTimeout.
// It used to wait for as long as the table was locked: a gateway's
// handler ending its session during a stop was left behind on it. The end
// is neither lost nor written twice: the store ended the transaction, so
// nothing of it was committed, and the recorder writes the end once the
// store answers (here at Close), one session.ended entry, the row ended.
func TestEndOnAStuckPostgresCommit(t *testing.T) {
	testEndOnAStuckStore(t, "log_entries")
}

// TestEndOnALockedSessionsTable: a session's End whose batch waits on the
// sessions' table, which another session holds locked (its transaction
// reads the row first, EndedElsewhere), returns with an error at the
// log's BatchTimeout, and the end is written once the table is free. It
// used to wait for as long as the table was locked.
func TestEndOnALockedSessionsTable(t *testing.T) {
	testEndOnAStuckStore(t, "sessions")
}

// testEndOnAStuckStore ends a session while tables are locked, under a
// store and a log bounded at 0.3 s, and checks that End returns at the
// bound and that the end is written once, after the lock.
func testEndOnAStuckStore(t *testing.T, tables string) {
	ctx := context.Background()
	dsn := testenv.PostgresDatabase(t, testenv.PostgresDSN(t), "sessions_pgend")
	const bound = 300 * time.Millisecond
	st, err := pgstore.OpenWith(ctx, dsn, pgstore.Options{CommitTimeout: bound, OutcomeTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, verifier, err := auditlog.LoadOrCreateKey(t.TempDir(), "airlock")
	if err != nil {
		t.Fatal(err)
	}
	l, err := auditlog.Open(ctx, st, signer, auditlog.Options{Origin: "airlock/sessions-test", Rows: review.StoreRows,
		Shared: true, Verifier: verifier, BatchTimeout: bound})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	g := grant("g_1")
	at := time.Now().UTC()
	if err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]auditlog.Event, error) {
		return []auditlog.Event{{Type: "grant.approved", Time: at, GrantID: g.ID, Actor: "alice"}},
			tx.CreateGrant(ctx, model.Grant{ID: g.ID, Identity: g.Identity, Target: g.Target, Status: model.Active,
				RequestedAt: at, ExpiresAt: at.Add(time.Hour)})
	}); err != nil {
		t.Fatal(err)
	}
	rec, err := New(Options{Log: l, Store: st, Now: func() time.Time { return time.Now().UTC() }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ses, err := rec.Start(ctx, g, "s_1", "127.0.0.1:5000 psql")
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(ctx, gateway.Call{Action: "pg:select", Resource: "public.events", Allowed: true}); err != nil {
		t.Fatal(err)
	}

	lock := testenv.LockPostgresTables(t, dsn, tables)
	ended := make(chan error, 1)
	t0 := time.Now()
	go func() { ended <- ses.End(ctx) }()
	select {
	case err := <-ended:
		d := time.Since(t0)
		t.Logf("End returned after %v: %v", d.Round(time.Millisecond), err)
		if err == nil {
			t.Fatal("End succeeded with the log's table locked")
		}
		if d > bound+3*time.Second {
			t.Fatalf("End took %v, with the store's CommitTimeout and the log's BatchTimeout %v", d, bound)
		}
	case <-time.After(15 * time.Second):
		lock.Rollback(ctx)
		<-ended
		t.Fatalf("End had not returned 15 s into the store's wait (CommitTimeout and BatchTimeout %v)", bound)
	}
	if err := lock.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// The end is retried until the log takes it. One retry (Close's) is
	// not enough on a loaded machine: the stuck batch's connection was
	// closed, and a new one must be made within the 0.3 s bound, which
	// failed at load 19 ("beginning transaction: pgstore: begin: context
	// deadline exceeded"), leaving the row open as a stopping process
	// would (for the next start's recovery). The flusher retries the
	// same way, every flushInterval, for as long as the process runs.
	var retried error
	for i := 0; i < 20; i++ {
		if retried = rec.retryEnds(ctx); retried == nil {
			break
		}
	}
	if retried != nil {
		t.Fatalf("the end was not written in 20 tries after the lock: %v", retried)
	}
	rec.Close()
	row, err := st.Session(ctx, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	if row.EndedAt.IsZero() || row.Calls != 1 {
		t.Fatalf("the session's row after the retried end: %+v", row)
	}
	es, err := st.LogEntries(ctx, store.LogFilter{SessionID: "s_1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := types(es), "session.started session.call session.ended"; got != want {
		t.Fatalf("the session's entries: %q, want %q", got, want)
	}
	if n := strings.Count(types(es), "session.ended"); n != 1 {
		t.Fatalf("%d session.ended entries", n)
	}
}
