package review_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// startedEntry is a session.started entry in the log's format.
func startedEntry(seq int64, at time.Time, grant, session, client string) store.LogEntry {
	data := fmt.Sprintf(`{"seq":%d,"time":%q,"type":"session.started","grant":%q,"session":%q,"actor":"bot","data":{"client":%q,"target":"db-prod"}}`,
		seq, at.Format(time.RFC3339Nano), grant, session, client)
	return store.LogEntry{Seq: seq, Time: at, Type: "session.started", GrantID: grant, SessionID: session, Data: []byte(data)}
}

func TestStoreRows(t *testing.T) {
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 12, 3, 19, 0, 0, 123456789, time.UTC)
	write := func(es ...store.LogEntry) error {
		tx, err := st.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := review.StoreRows(ctx, tx, es); err != nil {
			return err
		}
		return tx.Commit()
	}
	// A summary already stored for s_2 (written since its start was
	// stored) is left as it is.
	summary := model.Session{ID: "s_2", GrantID: "g_1", Identity: "bot", Target: "db-prod", StartedAt: at, Calls: 7}
	tx, err := st.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.PutSession(ctx, summary); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	other := store.LogEntry{Seq: 1, Type: "session.call", GrantID: "g_1", SessionID: "s_1", Data: []byte(`not even JSON: not read`)}
	if err := write(startedEntry(0, at, "g_1", "s_1", "psql 127.0.0.1:5000"), other, startedEntry(2, at, "g_1", "s_2", "x")); err != nil {
		t.Fatal(err)
	}
	got, err := st.Session(ctx, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	want := model.Session{ID: "s_1", GrantID: "g_1", Identity: "bot", Target: "db-prod", Client: "psql 127.0.0.1:5000", StartedAt: at}
	if got.ID != want.ID || got.GrantID != want.GrantID || got.Identity != want.Identity || got.Target != want.Target ||
		got.Client != want.Client || !got.StartedAt.Equal(want.StartedAt) || !got.EndedAt.IsZero() || got.Calls != 0 {
		t.Errorf("row %+v, want %+v", got, want)
	}
	if got, err := st.Session(ctx, "s_2"); err != nil || got.Calls != 7 || got.Client != "" {
		t.Errorf("stored summary after its start's row: %+v %v, want it unchanged", got, err)
	}

	// A session.ended entry writes the end and final summary it states
	// into the row, once; one that states no Used list keeps the row's.
	endedEntry := func(seq int64, at time.Time, session, used string) store.LogEntry {
		data := fmt.Sprintf(`{"seq":%d,"time":%q,"type":"session.ended","grant":"g_1","session":%q,"actor":"bot","data":{"calls":3,"denied":1,"bytes_in":5,"bytes_out":6%s}}`,
			seq, at.Format(time.RFC3339Nano), session, used)
		return store.LogEntry{Seq: seq, Time: at, Type: "session.ended", GrantID: "g_1", SessionID: session, Data: []byte(data)}
	}
	end := at.Add(time.Minute)
	if err := write(endedEntry(3, end, "s_1", `,"used":["pg:select db.public.t"]`), endedEntry(4, end.Add(time.Second), "s_1", `,"used":[]`),
		endedEntry(5, end, "s_2", "")); err != nil {
		t.Fatal(err)
	}
	got, err = st.Session(ctx, "s_1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.EndedAt.Equal(end) || got.Calls != 3 || got.Denied != 1 || got.BytesIn != 5 || got.BytesOut != 6 ||
		len(got.Used) != 1 || got.Used[0] != "pg:select db.public.t" || got.Client != want.Client {
		t.Errorf("row after its end %+v (the second end must not move it)", got)
	}
	if got, err := st.Session(ctx, "s_2"); err != nil || !got.EndedAt.Equal(end) || got.Calls != 3 {
		t.Errorf("row after an end without a Used list: %+v %v", got, err)
	}
	if err := write(endedEntry(6, end, "s_none", `,"used":[]`)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("end of a session without a row: %v, want ErrNotFound", err)
	}

	// An entry indexed as a start that is not one fails the transaction.
	bad := startedEntry(3, at, "g_1", "s_3", "x")
	bad.Data = []byte(strings.Replace(string(bad.Data), `"type":"session.started"`, `"type":"session.call"`, 1))
	if err := write(bad); err == nil {
		t.Error("StoreRows took an entry whose type differs from its index")
	}
	bad = startedEntry(4, at, "g_1", "s_4", "x")
	bad.Data = bad.Data[:len(bad.Data)-5]
	if err := write(bad); err == nil {
		t.Error("StoreRows took a truncated entry")
	}
	if _, err := st.Session(ctx, "s_3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("session s_3: %v, want no row", err)
	}
}
