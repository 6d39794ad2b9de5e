package server

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/config"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store"
)

// editEntry replaces a log entry's bytes and leaf hash in the database.
type editEntry func(ctx context.Context, seq int64, data, leaf []byte) error

// TestSessionPagesEditedStore: a session read a page at a time, whose
// later pages continue the first page's proof instead of deriving the
// grant's whole log again, reports a log entry edited in the database
// after the first page, on SQLite and PostgreSQL: here a call's
// parameters, which the session's summary does not count, with the leaf
// hash made to match. When each page derived the grant's log again, such
// an edit was not reported.
func TestSessionPagesEditedStore(t *testing.T) {
	for name, setup := range map[string]func(t *testing.T) (*config.Config, editEntry){
		"sqlite": func(t *testing.T) (*config.Config, editEntry) {
			cfg, _, _ := auditConfigKeys(t, "")
			return cfg, func(ctx context.Context, seq int64, data, leaf []byte) error {
				db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, DatabaseFile))
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.ExecContext(ctx, `UPDATE log_entries SET data = ?, leaf_hash = ? WHERE seq = ?`, data, leaf, seq)
				return err
			}
		},
		"postgres": func(t *testing.T) (*config.Config, editEntry) {
			dsn := pgDatabase(t)
			cfg, _, _ := auditConfigKeys(t, fmt.Sprintf("store: %q\n", dsn))
			return cfg, func(ctx context.Context, seq int64, data, leaf []byte) error {
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(ctx)
				_, err = conn.Exec(ctx, `UPDATE log_entries SET data = $1, leaf_hash = $2 WHERE seq = $3`, data, leaf, seq)
				return err
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			cfg, edit := setup(t)
			testSessionPagesEdited(t, cfg, edit)
		})
	}
}

func testSessionPagesEdited(t *testing.T, cfg *config.Config, edit editEntry) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	ses := pagingSessions(t, s, 1)[0]
	// 1,000 calls: marks of the proof's chain every 256 entries.
	const calls, limit = 1000, 200
	var ps []*gateway.Pending
	for i := range calls {
		ps = append(ps, ses.RequestAsync(ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%04d", i),
			Allowed: true, Params: map[string]string{"request_id": fmt.Sprint(i)}}))
	}
	for _, p := range ps {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := ses.End(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	all, err := s.store.LogEntries(ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil || len(all) != calls+2 {
		t.Fatalf("the store holds %d entries (%v), want %d", len(all), err, calls+2)
	}
	// On the fourth page (entries 600 to 799).
	victim := all[700]
	differ := "log entries of this session differ from those an earlier page read"
	var got int
	for after, page := int64(0), 1; ; page++ {
		sp, err := s.Service.Session(ctx, alice, ses.ID, grants.EventsQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		got += len(sp.Entries)
		mm := strings.Join(sp.Session.LogMismatch, "\n")
		switch {
		case page == 1:
			if mm != "" {
				t.Fatalf("page 1: %q", mm)
			}
			data := bytes.Replace(victim.Data, []byte(`"request_id":"`), []byte(`"request_id":"9`), 1)
			h := tlog.RecordHash(data)
			if bytes.Equal(data, victim.Data) {
				t.Fatal("the entry's parameters are not where the test edits them")
			}
			if err := edit(ctx, victim.Seq, data, h[:]); err != nil {
				t.Fatal(err)
			}
		case page >= 4 && !strings.Contains(mm, differ):
			t.Errorf("page %d: the edited entry #%d is not reported: %q", page, victim.Seq, mm)
		}
		if sp.Next == 0 {
			break
		}
		after = sp.Next
	}
	if got != len(all) {
		t.Errorf("%d entries over the pages, want %d", got, len(all))
	}
}
