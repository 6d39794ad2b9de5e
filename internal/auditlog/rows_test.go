package auditlog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// sessionRows is an Options.Rows for these tests: each session.started
// entry's session gets a row, as review.StoreRows writes it (package
// review, which imports this one, has its own tests of that function).
func sessionRows(ctx context.Context, tx store.Tx, es []store.LogEntry) error {
	for _, e := range es {
		if e.Type == "session.started" {
			if err := tx.InsertSession(ctx, model.Session{ID: e.SessionID, GrantID: e.GrantID, StartedAt: e.Time}); err != nil {
				return err
			}
		}
	}
	return nil
}

func started(id string) Event {
	return Event{Type: "session.started", GrantID: "g_rows", SessionID: id, Actor: "bot", Data: map[string]any{"client": "test"}}
}

// wantRows fails unless st holds a row for each of ids, or for none of
// them (want false).
func wantRows(t *testing.T, st store.Store, want bool, ids ...string) {
	t.Helper()
	for _, id := range ids {
		_, err := st.Session(context.Background(), id)
		switch {
		case want && err != nil:
			t.Errorf("session %s: %v, want the row its session.started entry implies", id, err)
		case !want && !errors.Is(err, store.ErrNotFound):
			t.Errorf("session %s: %v, want no row while its entry is not in the store", id, err)
		}
	}
}

// TestRowsOnEveryPath checks that Options.Rows writes the rows of every
// entry stored, whichever path stores it: the journal's copy into the
// store, a Do batch's own transaction, the replay of a journal a crash
// left, a store without a journal, and a log shared through PostgreSQL.
func TestRowsOnEveryPath(t *testing.T) {
	t.Run("journal", func(t *testing.T) {
		f := newJournalFixture(t)
		o := f.opts()
		o.Rows = sessionRows
		l := f.mustOpen(t, o)
		ctx := context.Background()
		if err := l.Append(ctx, started("s_j1"), started("s_j2")); err != nil {
			t.Fatal(err)
		}
		// A Do batch stores its own entries in its transaction, after the
		// journal's copy has caught up.
		err := l.Do(ctx, func(ctx context.Context, tx store.Tx) ([]Event, error) {
			return []Event{started("s_do")}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Append(ctx, started("s_j3")); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		wantRows(t, f.st, true, "s_j1", "s_j2", "s_do", "s_j3")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		f.verify(t, 4)
	})
	t.Run("journal replayed after a crash", func(t *testing.T) {
		f := newJournalFixture(t)
		f.crashWith(t, []Event{started("s_c1")}, []Event{started("s_c2"), started("s_c3")})
		wantRows(t, f.st, false, "s_c1", "s_c2", "s_c3")
		o := f.opts()
		o.Rows = sessionRows
		l := f.mustOpen(t, o) // Open replays the journal into the store
		wantRows(t, f.st, true, "s_c1", "s_c2", "s_c3")
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		f.verify(t, 3)
	})
	t.Run("journal replayed by ReplayJournal", func(t *testing.T) {
		f := newJournalFixture(t)
		f.crashWith(t, []Event{started("s_r1"), started("s_r2")})
		s, _ := fixedKey(t)
		n, err := ReplayJournal(context.Background(), f.st, s, f.journal, "airlock/test", JournalKeys{Seal: testJournalKey}, sessionRows)
		if err != nil || n != 2 {
			t.Fatalf("ReplayJournal: %d entries, %v", n, err)
		}
		wantRows(t, f.st, true, "s_r1", "s_r2")
	})
	t.Run("store without a journal", func(t *testing.T) {
		st := openSQLite(t, filepath.Join(t.TempDir(), "airlock.db"))
		s, _ := fixedKey(t)
		l, err := Open(context.Background(), st, s, Options{Origin: "airlock/test", Rows: sessionRows})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Append(context.Background(), started("s_n1")); err != nil {
			t.Fatal(err)
		}
		wantRows(t, st, true, "s_n1") // committed with the entry, before Append returned
	})
	t.Run("shared through PostgreSQL", func(t *testing.T) {
		dsn := pgDatabase(t)
		_, v := fixedKey(t)
		s, _ := fixedKey(t)
		ctx := context.Background()
		var ls []*Log
		for i := range 2 {
			o := replicaOptions(t.TempDir(), v, i)
			o.Rows = sessionRows
			l, err := Open(ctx, openPG(t, dsn), s, o)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ls = append(ls, l)
		}
		var ids []string
		for i := range 6 {
			id := fmt.Sprintf("s_p%d", i)
			ids = append(ids, id)
			if err := ls[i%2].Append(ctx, events(2, id)[0], started(id)); err != nil {
				t.Fatal(err)
			}
		}
		wantRows(t, openPG(t, dsn), true, ids...)
	})
}

// TestRowsFailureFailsTheBatch checks that an error from Options.Rows keeps
// the batch's entries out of the log: the rows and their entries commit
// together or not at all.
func TestRowsFailureFailsTheBatch(t *testing.T) {
	st := openSQLite(t, filepath.Join(t.TempDir(), "airlock.db"))
	s, _ := fixedKey(t)
	var fail atomic.Bool
	rows := func(ctx context.Context, tx store.Tx, es []store.LogEntry) error {
		if err := sessionRows(ctx, tx, es); err != nil {
			return err
		}
		if fail.Load() {
			return errors.New("rows refused")
		}
		return nil
	}
	l, err := Open(context.Background(), st, s, Options{Origin: "airlock/test", Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	fail.Store(true)
	if err := l.Append(ctx, started("s_f1")); err == nil || !strings.Contains(err.Error(), "rows refused") {
		t.Fatalf("Append with Rows failing: %v, want its error", err)
	}
	wantRows(t, st, false, "s_f1")
	if n, err := st.LogSize(ctx); err != nil || n != 0 {
		t.Fatalf("log size %d (%v) after a failed batch, want 0", n, err)
	}
	fail.Store(false)
	if err := l.Append(ctx, started("s_f2")); err != nil {
		t.Fatal(err)
	}
	wantRows(t, st, true, "s_f2")
}
