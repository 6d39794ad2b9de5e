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
	for name, setup := range editableStores() {
		t.Run(name, func(t *testing.T) {
			cfg, edit, _, _ := setup(t)
			testSessionPagesEdited(t, cfg, edit)
		})
	}
}

// rehashed replaces old with new in entry e's bytes in the database, with
// the leaf hash made to match.
func (edit editEntry) rehashed(t *testing.T, e store.LogEntry, old, new string) {
	t.Helper()
	data := bytes.Replace(e.Data, []byte(old), []byte(new), 1)
	if bytes.Equal(data, e.Data) {
		t.Fatalf("entry #%d holds no %s to edit", e.Seq, old)
	}
	h := tlog.RecordHash(data)
	if err := edit(context.Background(), e.Seq, data, h[:]); err != nil {
		t.Fatal(err)
	}
}

// editSession replaces old with new in a session's record in the
// database.
type editSession func(ctx context.Context, id, old, new string) error

// editableStores are the configurations of a server on SQLite and on
// PostgreSQL, each with what edits its database behind it, and alice's
// API key.
func editableStores() map[string]func(t *testing.T) (*config.Config, editEntry, editSession, string) {
	return map[string]func(t *testing.T) (*config.Config, editEntry, editSession, string){
		"sqlite": func(t *testing.T) (*config.Config, editEntry, editSession, string) {
			cfg, _, aliceKey := auditConfigKeys(t, "")
			exec := func(ctx context.Context, q string, args ...any) error {
				db, err := sql.Open("sqlite", filepath.Join(cfg.DataDir, DatabaseFile))
				if err != nil {
					return err
				}
				defer db.Close()
				_, err = db.ExecContext(ctx, q, args...)
				return err
			}
			return cfg, func(ctx context.Context, seq int64, data, leaf []byte) error {
					return exec(ctx, `UPDATE log_entries SET data = ?, leaf_hash = ? WHERE seq = ?`, data, leaf, seq)
				}, func(ctx context.Context, id, old, new string) error {
					return exec(ctx, `UPDATE sessions SET record = replace(record, ?, ?) WHERE id = ?`, old, new, id)
				}, aliceKey
		},
		"postgres": func(t *testing.T) (*config.Config, editEntry, editSession, string) {
			dsn := pgDatabase(t)
			cfg, _, aliceKey := auditConfigKeys(t, fmt.Sprintf("store: %q\n", dsn))
			exec := func(ctx context.Context, q string, args ...any) error {
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					return err
				}
				defer conn.Close(ctx)
				_, err = conn.Exec(ctx, q, args...)
				return err
			}
			return cfg, func(ctx context.Context, seq int64, data, leaf []byte) error {
					return exec(ctx, `UPDATE log_entries SET data = $1, leaf_hash = $2 WHERE seq = $3`, data, leaf, seq)
				}, func(ctx context.Context, id, old, new string) error {
					return exec(ctx, `UPDATE sessions SET record = convert_to(replace(convert_from(record, 'UTF8'), $1, $2), 'UTF8') WHERE id = $3`, old, new, id)
				}, aliceKey
		},
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
			edit.rehashed(t, victim, `"request_id":"`, `"request_id":"9`)
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

// TestGrantSessionsPagesEditedStore: the sessions of a grant read a page
// at a time, whose later pages (and the grant's record) continue the
// first page's proof instead of deriving the grant's whole log again,
// report what is edited in the database after the first page, on SQLite
// and PostgreSQL: a session's row (its calls) on page 2, a call's
// parameters of a session on page 3 with the leaf hash made to match
// (which a derivation of the whole log does not see), and the grant's
// reason in its request. Each is reported on the page that holds it, and
// by the grant's record after.
func TestGrantSessionsPagesEditedStore(t *testing.T) {
	for name, setup := range editableStores() {
		t.Run(name, func(t *testing.T) {
			cfg, edit, editRow, _ := setup(t)
			testGrantSessionsPagesEdited(t, cfg, edit, editRow)
		})
	}
}

// loggedSessions records sessions ended sessions of calls calls each
// (each with a request_id parameter) on one grant, and returns its id once
// the store holds them. 30 sessions of 40 calls are more than the 1,000
// entries from which a grant's proof is kept.
func loggedSessions(t *testing.T, s *Server, sessions, calls int) string {
	t.Helper()
	return loggedSessionsCommands(t, s, sessions, calls, 0)
}

// loggedSessionsCommands is loggedSessions with a command recorded on the
// grant after every every-th call (none if every is 0): the grant's own
// entries scattered among its sessions' calls.
//
// The calls up to the next command (or the session's end) are queued
// together (RequestAsync) and then waited for, as a gateway's concurrent
// calls are: the log numbers them in the order queued, so the entries are
// those one Request at a time made, in a few durable batches a session
// rather than one a call (1,200 in a row a grant, most of the tests'
// time).
func loggedSessionsCommands(t *testing.T, s *Server, sessions, calls, every int) string {
	t.Helper()
	ctx := context.Background()
	all := pagingSessions(t, s, sessions)
	for _, ses := range all {
		var queued []*gateway.Pending
		for i := range calls {
			queued = append(queued, ses.RequestAsync(ctx, gateway.Call{Action: "s3:GetObject", Resource: fmt.Sprintf("arn:aws:s3:::logs/app/k%04d", i),
				Allowed: true, Params: map[string]string{"request_id": fmt.Sprint(i)}}))
			command := every > 0 && i%every == every-1
			if !command && i < calls-1 {
				continue
			}
			for _, p := range queued {
				if err := p.Wait(ctx); err != nil {
					t.Fatal(err)
				}
			}
			queued = queued[:0]
			if command {
				if err := s.Service.RecordCommand(ctx, bot, ses.Grant.ID, []string{"aws", "s3", "ls", fmt.Sprint(i)}, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := ses.End(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.log.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return all[0].Grant.ID
}

func testGrantSessionsPagesEdited(t *testing.T, cfg *config.Config, edit editEntry, editRow editSession) {
	ctx := context.Background()
	s := openServer(t, cfg)
	defer s.Close()
	const sessions, calls, limit = 30, 40, 10
	grant := loggedSessions(t, s, sessions, calls)
	ss, err := s.store.SessionsPage(ctx, store.SessionFilter{GrantID: grant})
	if err != nil || len(ss) != sessions {
		t.Fatalf("%d sessions (%v)", len(ss), err)
	}
	rowEdited, entryEdited := ss[limit+4].ID, ss[2*limit+3].ID // on pages 2 and 3
	entries, err := s.store.LogEntries(ctx, store.LogFilter{SessionID: entryEdited, Type: "session.call"})
	if err != nil || len(entries) != calls {
		t.Fatalf("%d calls (%v)", len(entries), err)
	}
	victim := entries[calls/2]
	requests, err := s.store.LogEntries(ctx, store.LogFilter{GrantID: grant, Type: "grant.requested"})
	if err != nil || len(requests) != 1 {
		t.Fatalf("%d requests (%v)", len(requests), err)
	}
	differ := "log entries of this grant differ from those an earlier read of it read"
	got := 0
	for after, page := "", 1; ; page++ {
		p, err := s.Service.GrantSessions(ctx, alice, grant, grants.SessionsQuery{After: after, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		got += len(p.Sessions)
		for _, ses := range p.Sessions {
			mm := strings.Join(ses.LogMismatch, "\n")
			switch {
			case page == 1 && mm != "":
				t.Errorf("page 1: session %s: %q", ses.ID, mm)
			case ses.ID == rowEdited && !strings.Contains(mm, fmt.Sprintf("calls is 0, log says %d", calls)):
				t.Errorf("page %d: the edited row of session %s is not reported: %q", page, ses.ID, mm)
			case ses.ID == entryEdited && !strings.Contains(mm, differ):
				t.Errorf("page %d: the edited entry #%d of session %s is not reported: %q", page, victim.Seq, ses.ID, mm)
			}
		}
		if page == 1 {
			if err := editRow(ctx, rowEdited, fmt.Sprintf(`"calls":%d`, calls), `"calls":0`); err != nil {
				t.Fatal(err)
			}
			edit.rehashed(t, victim, `"request_id":"`, `"request_id":"9`)
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if got != sessions {
		t.Errorf("%d sessions over the pages, want %d", got, sessions)
	}
	if g, err := s.Service.Get(ctx, alice, grant); err != nil || !strings.Contains(strings.Join(g.LogMismatch, "\n"), differ) {
		t.Errorf("the grant after: %q, %v", g.LogMismatch, err)
	}
	// The grant's own entries are read again by each Get.
	edit.rehashed(t, requests[0], `"reason":"`, `"reason":"x`)
	if g, err := s.Service.Get(ctx, alice, grant); err != nil || !strings.Contains(strings.Join(g.LogMismatch, "\n"), "reason is") {
		t.Errorf("the grant after its request was edited: %q, %v", g.LogMismatch, err)
	}
}
