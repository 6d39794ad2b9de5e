package grants_test

import (
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasRemovedApproverLaggingReplica: a person is taken out of the
// configuration (a replica restarted on the new file disables them) or out
// of the approvers' group, and approves on a replica whose notice of that
// is still on its way, its directory (and so its console sessions and its
// key check) still showing them as they were. The decision is checked
// against the person as the store holds them in the transaction that
// records it: a lagging replica let the removed approver activate grants.
func TestReplicasRemovedApproverLaggingReplica(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	g1, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("10m"))
	if err != nil || g1.Status != model.Pending {
		t.Fatalf("request: %v %s", err, g1.Status)
	}
	g2, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("10m"))
	if err != nil || g2.Status != model.Pending {
		t.Fatalf("request: %v %s", err, g2.Status)
	}
	staleAlice, staleCarol := b.id(t, alice), b.id(t, carol)
	b.notifier.deaf.Store(true)
	rs.dropAliceUngroupCarol(a)
	if got, err := b.svc.Approve(rs.ctx, staleAlice, g1.ID, ""); err == nil {
		t.Errorf("a replica that had not heard of alice's removal let her approve %s (%s)", got.ID, got.Status)
	}
	if got, err := b.svc.Approve(rs.ctx, staleCarol, g2.ID, ""); err == nil {
		t.Errorf("a replica that had not heard carol left the approvers' group let her approve %s (%s)", got.ID, got.Status)
	}
	b.notifier.deaf.Store(false)
	for _, id := range []string{g1.ID, g2.ID} {
		g, err := a.st.Grant(rs.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if g.Status != model.Pending || len(g.Approvals) != 0 {
			t.Errorf("grant %s: %s, approvals %+v; want pending, none", id, g.Status, g.Approvals)
		}
		if slices.Contains(rs.entryTypes(id), "grant.approved") {
			t.Errorf("grant %s: the log records an approval", id)
		}
	}
}

// dropAliceUngroupCarol syncs on's identities with a file without alice,
// and with carol in no group, as a restart of on on that file would.
func (rs *replicaSet) dropAliceUngroupCarol(on *replica) {
	rs.t.Helper()
	var cfg []model.Identity
	for _, id := range rs.cfg {
		switch id.Name {
		case alice:
			continue
		case carol:
			id.Groups = nil
		}
		cfg = append(cfg, id)
	}
	if err := on.svc.SyncIdentities(rs.ctx, cfg); err != nil {
		rs.t.Fatal(err)
	}
}

// TestReplicasRemovedRevokerLaggingReplica: as
// TestReplicasRemovedApproverLaggingReplica, for a revoke. A person taken
// out of the configuration, or out of the approvers' group, revokes on a
// replica whose notice of that is still on its way. Revoke only takes
// access away, but the record then named someone who no longer had the
// right: the person is read in the transaction that records the revoke,
// and the refusal is recorded (decision.refused). The grant stays active,
// and the lagging replica still serves it.
func TestReplicasRemovedRevokerLaggingReplica(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	g1, cr1 := rs.approved(a, a)
	g2, cr2 := rs.approved(a, a)
	waitLookup(t, b, cr1)
	waitLookup(t, b, cr2)
	staleAlice, staleCarol := b.id(t, alice), b.id(t, carol)
	b.notifier.deaf.Store(true)
	rs.dropAliceUngroupCarol(a)
	ctx := grants.WithChannel(rs.ctx, "api", "")
	if got, err := b.svc.Revoke(ctx, staleAlice, g1.ID, "removed, still revoking"); err == nil {
		t.Errorf("a replica that had not heard of alice's removal let her revoke %s (%s)", got.ID, got.Status)
	}
	if got, err := b.svc.Revoke(ctx, staleCarol, g2.ID, "out of the group, still revoking"); err == nil {
		t.Errorf("a replica that had not heard carol left the approvers' group let her revoke %s (%s)", got.ID, got.Status)
	}
	for _, c := range []struct {
		id, by string
		cr     grants.Credentials
	}{{g1.ID, alice, cr1}, {g2.ID, carol, cr2}} {
		if g := rs.stored(c.id); g.Status != model.Active || g.EndedBy != "" {
			t.Errorf("grant %s: %s, ended by %q; want active", c.id, g.Status, g.EndedBy)
		}
		if slices.Contains(rs.entryTypes(c.id), "grant.revoked") {
			t.Errorf("grant %s: the log records a revoke", c.id)
		}
		// The refused revoke did not cut the grant off on B.
		if _, err := b.svc.Authority().Authenticate(c.cr.AccessKeyID, c.cr.SecretAccessKey); err != nil {
			t.Errorf("grant %s: B no longer serves it after a refused revoke: %v", c.id, err)
		}
		es, err := a.st.LogEntries(rs.ctx, store.LogFilter{GrantID: c.id})
		if err != nil {
			t.Fatal(err)
		}
		refused := false
		for _, e := range es {
			if e.Type != grants.RefusedDecisionType {
				continue
			}
			d := entryData(t, e)
			refused = refused || (d["_actor"] == c.by && d["action"] == "revoke" && d["via"] == "api")
		}
		if !refused {
			t.Errorf("grant %s: no decision.refused entry for %s's revoke", c.id, c.by)
		}
	}
	b.notifier.deaf.Store(false)
}
