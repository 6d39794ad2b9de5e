package sqlitestore

import (
	"database/sql"
	"strconv"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestAppendLogSharedStrings: the rows of a log INSERT bind the strings
// they all hold the same of once (the statement's form), and every row
// stores its own values whichever form took it: a type, grant or session
// shared or not, empty ones as NULL, in statements of several sizes.
func TestAppendLogSharedStrings(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    int
		// entry i's type, grant and session
		row func(i int) (typ, grant, session string)
		// form is that of the batch's largest statement
		form int
	}{
		{"one session", 40, func(int) (string, string, string) { return "session.call", "g_1", "s_1" },
			shareType | shareGrant | shareSession},
		{"three sessions", 40, func(i int) (string, string, string) { return "session.call", "g_1", "s_" + strconv.Itoa(i%3) },
			shareType | shareGrant},
		{"calls and results", 40, func(i int) (string, string, string) {
			return []string{"session.call", "session.results"}[i%2], "g_1", "s_" + strconv.Itoa(i%3)
		}, shareGrant},
		{"grants' own entries", 40, func(i int) (string, string, string) { return "grant.command", "g_" + strconv.Itoa(i%2), "" },
			shareType | shareSession},
		{"no grant", 24, func(i int) (string, string, string) { return "identity.added", "", "" },
			shareType | shareGrant | shareSession},
		{"nothing shared", 40, func(i int) (string, string, string) {
			return "t" + strconv.Itoa(i%2), []string{"", "g_1"}[i%2], []string{"s_1", ""}[i%2]
		}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := openTemp(t)
			defer s.Close()
			var es []store.LogEntry
			for i := range tc.n + 1 { // the log's first entry goes in alone
				typ, grant, session := tc.row(i)
				es = append(es, store.LogEntry{Seq: int64(i), Time: time.Unix(1_700_000_000, int64(i)).UTC(), Type: typ,
					GrantID: grant, SessionID: session, Data: []byte(`{"i":` + strconv.Itoa(i) + `}`), LeafHash: []byte{byte(i), 31: 1}})
			}
			appendLog(t, s, es)
			k := logSizes - 1
			for 1<<k > tc.n {
				k--
			}
			if s.logStmts[logStmt(tc.form, k)] == nil {
				t.Errorf("the INSERT of %d rows in form %d was not used", 1<<k, tc.form)
			}
			rows, err := s.w.QueryContext(t.Context(), `SELECT seq, time, type, grant_id, session_id, data, leaf_hash FROM log_entries ORDER BY seq`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			got := 0
			for rows.Next() {
				var (
					seq, ns             int64
					typ, grant, session sql.NullString
					data, leaf          []byte
				)
				if err := rows.Scan(&seq, &ns, &typ, &grant, &session, &data, &leaf); err != nil {
					t.Fatal(err)
				}
				e := es[got]
				if seq != e.Seq || ns != e.Time.UnixNano() || typ != nullStr(e.Type) || grant != nullStr(e.GrantID) ||
					session != nullStr(e.SessionID) || string(data) != string(e.Data) || string(leaf) != string(e.LeafHash) {
					t.Errorf("row %d: %d %d %v %v %v %s %x, want %+v", got, seq, ns, typ, grant, session, data, leaf, e)
				}
				got++
			}
			if err := rows.Err(); err != nil || got != len(es) {
				t.Fatalf("%d rows (%v), want %d", got, err, len(es))
			}
			checkIntegrity(t, s)
		})
	}
}

// nullStr is s as the log's rows store it: NULL when empty.
func nullStr(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
