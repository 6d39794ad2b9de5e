package server

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/grants"
)

// TestForgedGrantAtNegativeSeqMarked: someone with write access to the
// database copies a grant's entries, renamed, to negative sequence numbers
// (each with its correct leaf hash, and the runs that index them), and
// its grant and session rows. No position of the log holds those entries,
// yet reads of the grant's entries return them: airlock grants listed the
// forged grant as proven by the log, and grant show printed them as its
// "History (tamper-evident log)". The review now marks it, and audit
// verify reports the entries as inserted.
func TestForgedGrantAtNegativeSeqMarked(t *testing.T) {
	e := newAuditEnv(t)
	const fakeGrant, fakeSession = "g_forgedforgedforged00", "s_forgedforgedforged00"
	db, err := sql.Open("sqlite", filepath.Join(e.dataDir, DatabaseFile))
	if err != nil {
		t.Fatal(err)
	}
	rename := func(b []byte) []byte {
		b = bytes.ReplaceAll(b, []byte(e.grantID), []byte(fakeGrant))
		return bytes.ReplaceAll(b, []byte(e.session), []byte(fakeSession))
	}
	rows, err := db.Query(`SELECT seq, time, type, COALESCE(session_id, ''), data FROM log_entries WHERE grant_id = ? ORDER BY seq`, e.grantID)
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		seq, time    int64
		typ, session string
		data         []byte
	}
	var es []entry
	for rows.Next() {
		var x entry
		if err := rows.Scan(&x.seq, &x.time, &x.typ, &x.session, &x.data); err != nil {
			t.Fatal(err)
		}
		es = append(es, x)
	}
	rows.Close()
	if len(es) < 4 {
		t.Fatalf("the grant has %d entries", len(es))
	}
	for i, x := range es {
		seq := int64(i - 1000)
		d := rename(bytes.Replace(x.data, fmt.Appendf(nil, `{"seq":%d,`, x.seq), fmt.Appendf(nil, `{"seq":%d,`, seq), 1))
		h := tlog.RecordHash(d)
		var session any
		if x.session != "" {
			session = fakeSession
		}
		stmts := []struct {
			q    string
			args []any
		}{
			{`INSERT INTO log_entries (seq, time, type, grant_id, session_id, data, leaf_hash) VALUES (?, ?, ?, ?, ?, ?, ?)`, []any{seq, x.time, x.typ, fakeGrant, session, d, h[:]}},
			{`INSERT INTO log_grant_runs (grant_id, first_seq, last_seq) VALUES (?, ?, ?)`, []any{fakeGrant, seq, seq}},
		}
		if session != nil {
			stmts = append(stmts, struct {
				q    string
				args []any
			}{`INSERT INTO log_session_runs (session_id, first_seq, last_seq) VALUES (?, ?, ?)`, []any{fakeSession, seq, seq}})
		}
		for _, s := range stmts {
			if _, err := db.Exec(s.q, s.args...); err != nil {
				t.Fatalf("%s: %v", s.q, err)
			}
		}
	}
	var g, s []byte
	if err := db.QueryRow(`SELECT record FROM grants WHERE id = ?`, e.grantID).Scan(&g); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT record FROM sessions WHERE id = ?`, e.session).Scan(&s); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO grants (id, identity, target, account, status, requested_at, span_end, credential_id, record)
			SELECT ?, identity, target, account, status, requested_at, span_end, NULL, ? FROM grants WHERE id = ?`,
		`INSERT INTO sessions (id, grant_id, started_at, calls, denied, bytes_in, bytes_out, used_json, record)
			SELECT ?, ?, started_at, calls, denied, bytes_in, bytes_out, used_json, ? FROM sessions WHERE id = ?`,
	} {
		var args []any
		if strings.Contains(q, "INTO grants") {
			args = []any{fakeGrant, rename(g), e.grantID}
		} else {
			args = []any{fakeSession, fakeGrant, rename(s), e.session}
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	srv := openServer(t, e.cfg)
	defer srv.Close()
	ctx := context.Background()
	page, err := srv.Service.List(ctx, alice, grants.GrantsQuery{})
	if err != nil {
		t.Fatal(err)
	}
	list := page.Grants
	found := false
	for _, gr := range list {
		if gr.ID != fakeGrant {
			continue
		}
		found = true
		if !strings.Contains(strings.Join(gr.LogMismatch, "\n"), "negative sequence number") {
			t.Errorf("grants: the forged grant is not marked: %q", gr.LogMismatch)
		}
	}
	if !found {
		t.Fatal("the forged grant is not listed")
	}
	spage, err := srv.Service.GrantSessions(ctx, alice, fakeGrant, grants.SessionsQuery{})
	ss := spage.Sessions
	if err != nil || len(ss) != 1 || !strings.Contains(strings.Join(ss[0].LogMismatch, "\n"), "negative sequence number") {
		t.Errorf("grant show sessions: the forged session is not marked: %+v, %v", ss, err)
	}
	rep, err := srv.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inserted := 0
	for _, p := range rep.Problems {
		if p.Kind == auditlog.KindInserted && strings.Contains(p.Detail, "negative sequence number") {
			inserted++
		}
	}
	if rep.OK || inserted != len(es) {
		t.Errorf("verify: %d of %d forged entries reported as inserted:\n%s", inserted, len(es), problems(rep))
	}
}
