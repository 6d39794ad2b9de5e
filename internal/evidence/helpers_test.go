package evidence

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/sqlitestore"
)

// tuesday is the day of the test log's review.
const tuesday = "2026-03-03"

// testLog is a signed log on a SQLite store holding three grants: gA, of
// account 111122223333, approved by a person on Tuesday, with a session
// (calls, a result, its end), a command run under it and its revocation
// on Thursday; gB, of another account, the same day; gC, of the account,
// a week later.
type testLog struct {
	st     *sqlitestore.Store
	signer note.Signer
	v      note.Verifier
	vkey   string // v in note format, as log-signing.pub holds it
	origin string // the log's origin; testOrigin if empty
}

// testOrigin is the origin of the test log's checkpoints (and of the
// kept bundles in testdata).
const testOrigin = "airlock/0123abcd"

const (
	gA, gB, gC = "g_aaaaaaaaaaaa", "g_bbbbbbbbbbbb", "g_cccccccccccc"
	sA         = "s_aaaaaaaaaaaa"
	account    = "111122223333"
)

func newTestLog(t testing.TB) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return newTestLogOf(t, &testLog{signer: signer, v: v, vkey: vkey})
}

// newTestLogOf is newTestLog with key's signer, verifier and origin (a
// staging copy of the log, run with the same key).
func newTestLogOf(t testing.TB, key *testLog) *testLog {
	t.Helper()
	ctx := context.Background()
	st, err := sqlitestore.Open(ctx, filepath.Join(t.TempDir(), "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, v, vkey := key.signer, key.v, key.vkey
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	req := func(id, acct, when, reason string) auditlog.Event {
		return auditlog.Event{Type: "grant.requested", Time: at(when), GrantID: id, Actor: "log-triage-bot", Data: map[string]any{
			"identity": "log-triage-bot", "identity_kind": "agent", "owner": "sre-team", "target": "aws-prod",
			"target_kind": "aws", "account": acct, "scope": []string{"s3:GetObject arn:aws:s3:::logs/app/*"},
			"duration": "48h0m0s", "reason": reason, "auth": "key",
		}}
	}
	dec := model.PolicyDecision{Outcome: "human", PolicySetHash: "ph", PolicyIDs: []string{"p1"}, Explanation: "needs a person", At: at("2026-03-03T14:02:00Z")}
	appr := model.Approval{Approver: "alice", Decision: "approved", Comment: "ok", At: at("2026-03-03T14:03:00Z"), Policies: []string{"leads"}, PolicySetHash: "ph"}
	call := func(when string, c map[string]any) auditlog.Event {
		return auditlog.Event{Type: "session.call", Time: at(when), GrantID: gA, SessionID: sA, Actor: "log-triage-bot", Data: c}
	}
	events := []auditlog.Event{
		{Type: "identity.added", Time: at("2026-03-01T00:00:00Z"), Actor: "airlock", Data: map[string]any{"name": "alice"}},
		req(gA, account, "2026-03-03T14:02:00Z", "billing errors"),
		{Type: "grant.decided", Time: at("2026-03-03T14:02:00Z"), GrantID: gA, Actor: "policy", Data: dec},
		req(gB, "444455556666", "2026-03-03T15:00:00Z", "other account"),
		{Type: "grant.approved", Time: at("2026-03-03T14:03:00Z"), GrantID: gA, Actor: "alice", Data: appr},
		{Type: "grant.activated", Time: at("2026-03-03T14:03:00Z"), GrantID: gA, Actor: "alice", Data: map[string]any{
			"granted_scope": []string{"s3:GetObject arn:aws:s3:::logs/app/*"}, "started_at": at("2026-03-03T14:03:00Z"),
			"expires_at": at("2026-03-05T14:03:00Z"), "credential_id": "AKIAEXAMPLE", "credential_fingerprint": "fp",
		}},
		{Type: "grant.credentials_issued", Time: at("2026-03-03T14:04:00Z"), GrantID: gA, Actor: "log-triage-bot", Data: map[string]any{"format": "env"}},
		{Type: "session.started", Time: at("2026-03-03T14:05:00Z"), GrantID: gA, SessionID: sA, Actor: "log-triage-bot", Data: map[string]any{"client": "aws-cli", "target": "aws-prod"}},
		call("2026-03-03T14:05:01Z", map[string]any{"kind": "request", "action": "s3:GetObject", "resource": "arn:aws:s3:::logs/app/a.log", "allowed": true, "bytes_out": 100}),
		call("2026-03-03T14:05:02Z", map[string]any{"kind": "request", "action": "s3:DeleteObject", "resource": "arn:aws:s3:::logs/app/a.log", "allowed": false}),
		call("2026-03-03T14:05:03Z", map[string]any{"kind": "result", "action": "s3:GetObject"}),
		{Type: "session.ended", Time: at("2026-03-03T14:06:00Z"), GrantID: gA, SessionID: sA, Actor: "log-triage-bot", Data: map[string]any{"calls": 1, "denied": 1, "bytes_out": 100, "used": []string{"s3:GetObject arn:aws:s3:::logs/app/a.log"}}},
		{Type: "grant.command", Time: at("2026-03-04T09:00:00Z"), GrantID: gA, Actor: "log-triage-bot", Data: map[string]any{"argv": []string{"aws", "s3", "rm", "--recursive", "s3://logs/app/"}, "via": "mcp"}},
		{Type: "grant.revoked", Time: at("2026-03-05T10:00:00Z"), GrantID: gA, Actor: "bob", Data: map[string]any{"at": at("2026-03-05T10:00:00Z"), "by": "bob", "reason": "done", "status": "revoked"}},
		req(gC, account, "2026-03-10T08:00:00Z", "next week"),
	}
	tl := &testLog{st: st, signer: signer, v: v, vkey: vkey, origin: key.origin}
	tl.append(t, events...)
	return tl
}

// append appends events to the log, one batch (and checkpoint) each.
func (tl *testLog) append(t testing.TB, events ...auditlog.Event) {
	t.Helper()
	ctx := context.Background()
	origin := tl.origin
	if origin == "" {
		origin = testOrigin
	}
	l, err := auditlog.Open(ctx, tl.st, tl.signer, auditlog.Options{Origin: origin, Rows: review.StoreRows})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, e := range events {
		if err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
}

// export builds the bundle of acct on day as the server's Export does:
// every grant of acct live on day, with every entry of it.
func (tl *testLog) export(t testing.TB, acct, day string) []byte {
	t.Helper()
	b, err := tl.tryExport(t, acct, day)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tryExport is export returning Build's error.
func (tl *testLog) tryExport(t testing.TB, acct, day string) ([]byte, error) {
	t.Helper()
	ctx := context.Background()
	d := review.NewDeriver()
	entries := map[string][]store.LogEntry{}
	var refused []store.LogEntry
	tree, err := auditlog.BuildProofTreeEach(ctx, tl.st, tl.v, func(e store.LogEntry) error {
		p, err := review.Parse(bytes.Clone(e.Data))
		if err != nil {
			return nil
		}
		if p.Type == review.RefusedType {
			refused = append(refused, store.LogEntry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
		}
		_ = d.Apply(p)
		if p.Grant != "" {
			entries[p.Grant] = append(entries[p.Grant], store.LogEntry{Seq: e.Seq, Data: bytes.Clone(e.Data)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	d0, _ := time.Parse("2006-01-02", day)
	var ids []string
	for _, id := range d.GrantIDs() {
		g, _, _ := d.Grant(id)
		if dl := g.Deadline(); g.Account != acct || !g.RequestedAt.Before(d0.Add(24*time.Hour)) || !dl.IsZero() && dl.Before(d0) {
			continue
		}
		ids = append(ids, id)
	}
	return Build(acct, day, tree, tl.signer, ids, entries, refused)
}

// decode decodes a bundle for a test to change it.
func decode(t testing.TB, file []byte) Bundle {
	t.Helper()
	var b Bundle
	if err := json.Unmarshal(file, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// reencode writes b in canonical form, as a forger would after changing it.
func reencode(t testing.TB, b Bundle) []byte {
	t.Helper()
	out, err := encode(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// entryType is the type of bundle entry e.
func entryType(t testing.TB, e Entry) string {
	t.Helper()
	data, err := b64.DecodeString(e.Data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := review.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	return p.Type
}
