package evidence

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
)

// gD is a PostgreSQL grant of the test log's account on Tuesday, select
// only, whose session ran an INSERT PostgreSQL refused for lack of
// privilege (42501: a result marked refused) and a SELECT that ran.
const (
	gD = "g_dddddddddddd"
	sD = "s_dddddddddddd"
)

// appendRefused appends gD's entries to tl's log.
func appendRefused(t testing.TB, tl *testLog) {
	t.Helper()
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	dec := model.PolicyDecision{Outcome: "auto", PolicySetHash: "ph", PolicyIDs: []string{"reads"}, Explanation: "reads", At: at("2026-03-03T16:00:00Z")}
	ev := func(typ, when string, data any) auditlog.Event {
		e := auditlog.Event{Type: typ, Time: at(when), GrantID: gD, Actor: "log-triage-bot", Data: data}
		if typ == "session.started" || typ == "session.call" || typ == "session.results" || typ == "session.ended" {
			e.SessionID = sD
		}
		return e
	}
	tl.append(t,
		ev("grant.requested", "2026-03-03T16:00:00Z", map[string]any{
			"identity": "log-triage-bot", "identity_kind": "agent", "owner": "sre-team", "target": "orders-db",
			"target_kind": "postgres", "account": account, "scope": []string{"pg:select orders"},
			"duration": "1h0m0s", "reason": "count orders", "auth": "key",
		}),
		auditlog.Event{Type: "grant.decided", Time: at("2026-03-03T16:00:00Z"), GrantID: gD, Actor: "policy", Data: dec},
		auditlog.Event{Type: "grant.activated", Time: at("2026-03-03T16:00:00Z"), GrantID: gD, Actor: "policy", Data: map[string]any{
			"granted_scope": []string{"pg:select orders"}, "started_at": at("2026-03-03T16:00:00Z"),
			"expires_at": at("2026-03-03T17:00:00Z"), "credential_id": "airlock_x", "credential_fingerprint": "fp",
		}},
		ev("session.started", "2026-03-03T16:01:00Z", map[string]any{"client": "psql", "target": "orders-db"}),
		ev("session.call", "2026-03-03T16:01:01Z", map[string]any{"kind": "request", "action": "pg:insert", "resource": "orders", "allowed": true,
			"params": map[string]string{"n": "1", "statement": "insert into orders values (1)"}}),
		ev("session.results", "2026-03-03T16:01:02Z", map[string]any{"results": []map[string]any{{"kind": "result", "action": "pg:insert", "resource": "orders",
			"allowed": true, "refused": true, "params": map[string]string{"n": "1"}, "error": "42501 permission denied for table orders"}}}),
		ev("session.call", "2026-03-03T16:01:03Z", map[string]any{"kind": "request", "action": "pg:select", "resource": "orders", "allowed": true,
			"params": map[string]string{"n": "2", "statement": "select count(*) from orders"}}),
		ev("session.results", "2026-03-03T16:01:04Z", map[string]any{"results": []map[string]any{{"kind": "result", "action": "pg:select", "resource": "orders",
			"allowed": true, "params": map[string]string{"n": "2"}, "status": "SELECT 1", "rows": 1, "bytes_out": 12}}}),
		ev("session.ended", "2026-03-03T16:02:00Z", map[string]any{"calls": 1, "denied": 1, "bytes_out": 12, "used": []string{"pg:select orders"}}),
	)
}
