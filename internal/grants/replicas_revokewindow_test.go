package grants_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
)

// TestReplicasNoCallLoggedAfterRevoke: B serves a session under a grant
// that A revokes before B has applied the notice (here B's listener is deaf;
// over a live one the notice takes milliseconds, during which an agent's
// calls through B kept being served: 12 calls logged after the
// grant.revoked entry in an e2e run of two `airlock serve` processes, and
// up to 3 s of them over a silently cut connection). B still holds the
// grant in memory, but its records of the session's calls (synchronous and
// asynchronous) and of a new session's start are refused, since the log's
// writers' lock orders them after the revoke's commit; the log holds no
// call of the grant after its end, and B's calls through other live grants
// are still recorded.
func TestReplicasNoCallLoggedAfterRevoke(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	g, cr := rs.approved(a, a)
	_, ocr := rs.approved(a, a)
	ses := rs.servedSession(b, cr, "127.0.0.1")
	oses := rs.servedSession(b, ocr, "127.0.0.1")

	b.notifier.deaf.Store(true)
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "incident over"); err != nil {
		t.Fatal(err)
	}
	gg := waitLookup(t, b, cr) // B has not heard: it still serves the grant
	call := gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Allowed: true}
	if err := ses.Request(rs.ctx, call); !errors.Is(err, auditlog.ErrGrantEnded) || !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("a call on B after the revoke on A: %v; want ErrGrantEnded", err)
	}
	if err := ses.RequestAsync(rs.ctx, call).Wait(rs.ctx); !errors.Is(err, auditlog.ErrGrantEnded) {
		t.Errorf("an async call on B after the revoke on A: %v; want ErrGrantEnded", err)
	}
	if _, err := b.svc.Authority().StartSession(rs.ctx, gg, "127.0.0.1"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("a new session on B after the revoke on A: %v; want ErrNoGrant", err)
	}
	// Another grant's calls on B are unaffected.
	if err := oses.Request(rs.ctx, call); err != nil {
		t.Errorf("a call of another live grant on B: %v", err)
	}
	types := rs.entryTypes(g.ID)
	end := slices.Index(types, "grant.revoked")
	if end < 0 {
		t.Fatalf("no grant.revoked in %v", types)
	}
	for _, typ := range types[end:] {
		if typ == "session.call" || typ == "session.started" {
			t.Fatalf("%s logged after the grant's end: %v", typ, types)
		}
	}
	if calls := rs.sessionEntryTypes(oses.ID); len(calls) != 3 || calls[2] != "session.call" {
		t.Fatalf("the other grant's session on B: %v; want its start and two calls", calls)
	}
	b.notifier.deaf.Store(false)
}
