package grants_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// extends is a request of scope for d that extends the grant base.
func extends(base, scope, d string) grants.RequestInput {
	return grants.RequestInput{Target: awsProd, Scope: []string{scope}, Duration: d, Reason: "more time", Extends: base}
}

// TestRevokeEndsExtensions: revoking a grant ends the grants that extend
// it, and theirs in turn. An active extension kept the agent in after the
// revoke, under its own credentials, and a pending one stayed in the queue
// for an approver to bring the revoked access back.
func TestRevokeEndsExtensions(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{})
	g := h.request(bot, autoReq("10m"), model.Active)
	ext := h.request(bot, extends(g.ID, appLogs, "15m"), model.Active) // auto, like g
	extOfExt := h.request(bot, extends(ext.ID, allLogs, "10m"), model.Pending)
	pend := h.request(bot, extends(g.ID, allLogs, "20m"), model.Pending)
	other := h.request(bot, autoReq("10m"), model.Active) // extends nothing
	c := h.creds(bot, ext.ID)
	gg, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey)
	if err != nil {
		t.Fatal(err)
	}

	if _, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "agent misbehaving"); err != nil {
		t.Fatal(err)
	}

	rec := h.grant(ext.ID)
	if rec.Status != model.Revoked || rec.EndReason != "revoked" || rec.EndedBy != alice ||
		!strings.Contains(rec.EndComment, g.ID) || !strings.Contains(rec.EndComment, "agent misbehaving") {
		t.Errorf("active extension after the revoke: %s by %q: %q", rec.Status, rec.EndedBy, rec.EndComment)
	}
	if !isClosed(gg.Done()) {
		t.Error("the active extension's gateway grant is still live")
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("the extension's credentials after the revoke: %v", err)
	}
	if got := h.types(ext.ID); count(got, "grant.revoked") != 1 {
		t.Errorf("extension's log %v", got)
	}
	for _, p := range []model.Grant{pend, extOfExt} {
		rec := h.grant(p.ID)
		if rec.Status != model.Cancelled || rec.EndedBy != alice || !strings.Contains(rec.EndComment, g.ID) {
			t.Errorf("pending extension %s after the revoke: %s by %q: %q", p.ID, rec.Status, rec.EndedBy, rec.EndComment)
		}
		_, err := h.Svc.Approve(h.ctx, h.id(carol), p.ID, "")
		wantAPIErr(t, err, 409, apierr.CodeConflict, "")
	}
	if rec := h.grant(other.ID); rec.Status != model.Active {
		t.Errorf("a grant that extends nothing was ended: %s", rec.Status)
	}
	if msgs := h.errs.list(); len(msgs) != 0 {
		t.Errorf("errors logged: %v", msgs)
	}
}

// TestExtensionCheckedInItsTransaction: the grant a request extends is
// read again in the transaction that records the request. A revoke that
// commits between the request's first check and its transaction (on
// another replica) has ended the extensions it found; without the second
// read the new one was recorded, active, extending a revoked grant.
func TestExtensionCheckedInItsTransaction(t *testing.T) {
	t.Parallel()
	var revoke atomic.Pointer[string]
	h := newHarness(t, harnessOptions{LogStore: func(st store.Store) store.Store {
		return revokingStore{Store: st, revoke: &revoke}
	}})
	g := h.request(bot, autoReq("10m"), model.Active)
	revoke.Store(&g.ID)
	_, err := h.Svc.Request(h.ctx, h.id(bot), extends(g.ID, appLogs, "15m"))
	if revoke.Load() != nil {
		t.Fatal("the request's transaction read no identity; the test injects nothing")
	}
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "extends")
	if n := h.grantCount(); n != 1 {
		t.Errorf("%d grants recorded, want 1", n)
	}
}

// revokingStore, once revoke holds a grant id, marks that grant revoked in
// the next write transaction that reads an identity, just before that read:
// as a revoke committed just before the transaction began would have.
type revokingStore struct {
	store.Store
	revoke *atomic.Pointer[string]
}

func (s revokingStore) Begin(ctx context.Context) (store.Tx, error) {
	tx, err := s.Store.Begin(ctx)
	if err != nil {
		return nil, err
	}
	return revokingTx{Tx: tx, revoke: s.revoke}, nil
}

type revokingTx struct {
	store.Tx
	revoke *atomic.Pointer[string]
}

func (t revokingTx) Identity(ctx context.Context, name string) (model.Identity, error) {
	if id := t.revoke.Swap(nil); id != nil {
		g, err := t.Tx.Grant(ctx, *id)
		if err != nil {
			return model.Identity{}, err
		}
		g.Status, g.EndedAt, g.EndReason, g.EndedBy, g.EndComment = model.Revoked, time.Now().UTC(), "revoked", alice, "revoked elsewhere"
		if err := t.Tx.UpdateGrant(ctx, g); err != nil {
			return model.Identity{}, err
		}
	}
	return t.Tx.Identity(ctx, name)
}

// TestExtensionsOfARevokedGrantAfterAFailedCascade: when the revoke is
// recorded but ending its extensions is not (the log failed just then, or
// Airlock stopped), the pending extension cannot be approved, and the next
// start ends both: the active one was otherwise served again after the
// restart, and the pending one approvable, though a person had revoked
// the grant they extend.
func TestExtensionsOfARevokedGrantAfterAFailedCascade(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	g := h.request(bot, autoReq("10m"), model.Active)
	ext := h.request(bot, extends(g.ID, appLogs, "15m"), model.Active)
	pend := h.request(bot, extends(g.ID, allLogs, "20m"), model.Pending)
	c := h.creds(bot, ext.ID)
	// The log fails from the moment the revoke has committed.
	h.Svc.OnChange(func(ch grants.Change) {
		if ch.Type == "grant.revoked" && ch.Grant.ID == g.ID {
			fail.Store(true)
		}
	})
	_, err := h.Svc.Revoke(h.ctx, h.id(alice), g.ID, "agent misbehaving")
	if err == nil || !strings.Contains(err.Error(), "revoke it too") {
		t.Fatalf("revoke whose extensions could not be ended: %v", err)
	}
	fail.Store(false)
	if rec := h.grant(g.ID); rec.Status != model.Revoked {
		t.Fatalf("the revoked grant is %s", rec.Status)
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("the active extension is not cut off while its end is unrecorded: %v", err)
	}
	for _, id := range []string{ext.ID, pend.ID} {
		if rec := h.grant(id); rec.Status.Final() {
			t.Fatalf("%s is %s; the test meant its end to fail", id, rec.Status)
		}
	}
	_, err = h.Svc.Approve(h.ctx, h.id(carol), pend.ID, "")
	if e := wantAPIErr(t, err, 409, apierr.CodeConflict, ""); e != nil && !strings.Contains(e.Message, g.ID) {
		t.Errorf("approving an extension of a revoked grant: %v", e)
	}

	h.restart()
	for id, want := range map[string]model.GrantStatus{ext.ID: model.Revoked, pend.ID: model.Cancelled} {
		rec := h.grant(id)
		if rec.Status != want || !strings.Contains(rec.EndComment, g.ID) {
			t.Errorf("%s after the restart: %s by %q: %q", id, rec.Status, rec.EndedBy, rec.EndComment)
		}
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("the active extension after the restart: %v", err)
	}
}

// TestReplicasRevokeEndsExtensions: on replicas sharing a PostgreSQL store,
// a revoke on A ends the extension another replica serves, and an
// extension of the revoked grant asked for on B afterwards is refused.
func TestReplicasRevokeEndsExtensions(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	g, _ := rs.approved(a, b)
	ext, err := b.svc.Request(rs.ctx, b.id(t, bot), extends(g.ID, appLogs, "15m"))
	if err != nil || ext.Status != model.Active {
		t.Fatalf("extension on B: %v (%s)", err, ext.Status)
	}
	cr, err := b.svc.Credentials(rs.ctx, b.id(t, bot), ext.ID)
	if err != nil {
		t.Fatal(err)
	}
	gg := waitLookup(t, b, cr)
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gg.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("B still serves the extension 5 s after the revoke on A")
	}
	rec, err := b.st.Grant(rs.ctx, ext.ID)
	if err != nil || rec.Status != model.Revoked || rec.EndedBy != carol {
		t.Fatalf("extension after the revoke: %s by %q (%v)", rec.Status, rec.EndedBy, err)
	}
	_, err = b.svc.Request(rs.ctx, b.id(t, bot), extends(g.ID, appLogs, "15m"))
	wantAPIErr(t, err, 400, apierr.CodeInvalid, "extends")
}
