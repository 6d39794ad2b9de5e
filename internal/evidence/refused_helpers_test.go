package evidence

import (
	"strings"
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
	grant, ev := autoGrant(t, gD, sD, "orders-db", "postgres", "pg:select orders", "count orders", "airlock_x", "2026-03-03T16:00:00Z")
	tl.append(t, append(grant,
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
	)...)
}

// autoGrant returns the entries that request grant id, of the test log's
// account and the identity log-triage-bot, on target (of kind) for scope,
// at start (RFC 3339) for an hour, and activate it by the policy "reads"
// with credential cred; and ev, which makes an entry of the grant, of its
// session session when typ is a session's.
func autoGrant(t testing.TB, id, session, target, kind, scope, reason, cred, start string) ([]auditlog.Event, func(typ, when string, data any) auditlog.Event) {
	t.Helper()
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	ev := func(typ, when string, data any) auditlog.Event {
		e := auditlog.Event{Type: typ, Time: at(when), GrantID: id, Actor: "log-triage-bot", Data: data}
		if strings.HasPrefix(typ, "session.") {
			e.SessionID = session
		}
		return e
	}
	from := at(start)
	dec := model.PolicyDecision{Outcome: "auto", PolicySetHash: "ph", PolicyIDs: []string{"reads"}, Explanation: "reads", At: from}
	return []auditlog.Event{
		ev("grant.requested", start, map[string]any{
			"identity": "log-triage-bot", "identity_kind": "agent", "owner": "sre-team", "target": target,
			"target_kind": kind, "account": account, "scope": []string{scope},
			"duration": "1h0m0s", "reason": reason, "auth": "key",
		}),
		{Type: "grant.decided", Time: from, GrantID: id, Actor: "policy", Data: dec},
		{Type: "grant.activated", Time: from, GrantID: id, Actor: "policy", Data: map[string]any{
			"granted_scope": []string{scope}, "started_at": from,
			"expires_at": from.Add(time.Hour), "credential_id": cred, "credential_fingerprint": "fp",
		}},
	}, ev
}
