package grants_test

import (
	"slices"
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
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
	// A restarts on a file without alice, and with carol in no group.
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
	if err := a.svc.SyncIdentities(rs.ctx, cfg); err != nil {
		t.Fatal(err)
	}
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
