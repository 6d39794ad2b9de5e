package grants_test

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/store"
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

// TestReplicasNothingIssuedAfterRevoke: B reads a grant active for the
// holder's credentials (or an MCP command's record), and A's revoke
// commits before B logs the issue. B handed out the credentials and
// logged grant.credentials_issued (or grant.command) after grant.revoked.
// Now the append checks the grant under the log's lock, and B answers
// with a conflict.
func TestReplicasNothingIssuedAfterRevoke(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	// B applies no notice: the only read of the grant on B is the one
	// under test.
	b.notifier.deaf.Store(true)
	defer b.notifier.deaf.Store(false)
	for _, c := range []struct {
		what, typ string
		do        func(id string) error
	}{
		{"credentials", "grant.credentials_issued", func(id string) error {
			_, err := b.svc.Credentials(rs.ctx, b.id(t, bot), id)
			return err
		}},
		{"command", "grant.command", func(id string) error {
			return b.svc.RecordCommand(rs.ctx, b.id(t, bot), id, []string{"aws", "s3", "ls"}, "")
		}},
	} {
		g, _ := rs.approved(a, a)
		var once sync.Once
		revoke := func(id string) {
			if id != g.ID {
				return
			}
			once.Do(func() {
				if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "incident over"); err != nil {
					t.Error(err)
				}
			})
		}
		b.st.afterGrant.Store(&revoke)
		err := c.do(g.ID)
		b.st.afterGrant.Store(nil)
		if !isConflict(err) {
			t.Errorf("%s on B as A revoked: %v; want a conflict", c.what, err)
		}
		es, lerr := rs.r[0].st.LogEntries(rs.ctx, store.LogFilter{GrantID: g.ID})
		if lerr != nil {
			t.Fatal(lerr)
		}
		ended := false
		for _, e := range es {
			ended = ended || e.Type == "grant.revoked"
			if ended && e.Type == c.typ {
				t.Errorf("%s logged after grant.revoked", c.typ)
			}
		}
		if !ended {
			t.Fatalf("%s: the grant was not revoked", c.what)
		}
	}
}
