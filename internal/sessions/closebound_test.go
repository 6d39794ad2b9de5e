package sessions

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// hangingStore is a store whose transactions, once hang is set, do not
// begin until released, whatever their context says: a PostgreSQL table
// another session holds locked, a connection that stopped forwarding.
type hangingStore struct {
	store.Store
	hang    atomic.Bool
	release chan struct{}
}

func (h *hangingStore) Begin(ctx context.Context) (store.Tx, error) {
	if h.hang.Load() {
		<-h.release
	}
	return h.Store.Begin(ctx)
}

// TestCloseIsBoundedWhenTheStoreHangs: Close returns at CloseTimeout on
// its clock when the store does not answer, where it used to wait for the
// store for ever, and airlock serve's stop with it. Nothing durable is
// lost: the session's calls are in the log (here its journal), from which
// the next start ends the session and counts its summary again; the
// process log says what was not written.
func TestCloseIsBoundedWhenTheStoreHangs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	sq, err := sqlitestore.Open(ctx, filepath.Join(dir, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	st := &hangingStore{Store: sq, release: make(chan struct{})}
	signer, _, err := auditlog.LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	lo := auditlog.Options{Origin: "airlock/sessions-test", Rows: review.StoreRows,
		JournalDir: filepath.Join(dir, "journal"), JournalKey: []byte("sessions-test-journal-key-32byte")}
	l, err := auditlog.Open(ctx, st, signer, lo)
	if err != nil {
		t.Fatal(err)
	}
	var released sync.Once
	release := func() { released.Do(func() { close(st.release) }) }
	t.Cleanup(func() {
		release()
		l.Close()
		sq.Close()
	})
	fake := clock.NewFake(time.Now())
	var logged testenv.LockedBuffer
	rec, err := New(Options{Log: l, Store: st, Clock: fake, Now: func() time.Time { return fake.Now().UTC() },
		Logger: slog.New(slog.NewTextHandler(&logged, nil)), CloseTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	rec.Run()

	ses, err := rec.Start(ctx, grant("g_1"), "s_1", "127.0.0.1:5000 psql")
	if err != nil {
		t.Fatal(err)
	}
	call := gateway.Call{Action: "pg:select", Resource: "public.events", Allowed: true}
	if err := ses.Request(ctx, call); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st.hang.Store(true)
	for range 2 { // durable in the journal; the store never sees them
		if err := ses.Request(ctx, call); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.Result(ctx, call); err != nil {
		t.Fatal(err)
	}

	closed := make(chan struct{})
	go func() {
		rec.Close()
		close(closed)
	}()
	// Close's bound passes on the fake clock (again, until Close has
	// armed it): the store never answers.
	for deadline := time.Now().Add(10 * time.Second); ; {
		fake.Advance(5 * time.Second)
		select {
		case <-closed:
		case <-time.After(20 * time.Millisecond):
			if time.Now().Before(deadline) {
				continue
			}
			t.Fatal("Close had not returned 10 s after its bound passed, with the store hung")
		}
		break
	}
	if out := logged.String(); !strings.Contains(out, "not all written in time") || !strings.Contains(out, "sessions_open=1") {
		t.Fatalf("the process log does not say what was left:\n%s", out)
	}

	// The store answers again: every call is in the log, so the next
	// start's recovery derives the session's summary from it.
	release()
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	es, err := sq.LogEntries(ctx, store.LogFilter{SessionID: "s_1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := types(es), "session.started session.call session.call session.call"; !strings.HasPrefix(got, want) {
		t.Fatalf("the log holds %q, want it to start with %q", got, want)
	}
}
