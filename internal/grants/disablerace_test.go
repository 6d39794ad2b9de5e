package grants_test

import (
	"testing"

	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasDisabledAgentLaggingReplica: an agent disabled on A asks a
// replica whose notice of the disable is still on its way (its directory
// still has the agent enabled) for a grant that policy approves outright.
// DisableAgent swept the agent's grants on A before this one existed, so
// if the lagging replica issued it, a disabled (compromised) agent would
// hold an active grant, usable on every replica, for its whole duration.
func TestReplicasDisabledAgentLaggingReplica(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	stale := b.id(t, bot) // what b's directory still authenticates the agent as
	b.notifier.deaf.Store(true)
	if _, err := a.svc.DisableAgent(rs.ctx, a.id(t, alice), bot, "compromised"); err != nil {
		t.Fatal(err)
	}
	if g, err := b.svc.Request(rs.ctx, stale, autoReq("10m")); err == nil {
		t.Errorf("a replica that had not yet heard of the disable granted the disabled agent %s (%s)", g.ID, g.Status)
	}
	b.notifier.deaf.Store(false)
	open, err := a.st.Grants(rs.ctx, store.GrantFilter{Identity: bot, Status: []model.GrantStatus{model.Active, model.Pending}})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range open {
		t.Errorf("the disabled agent holds grant %s (%s)", g.ID, g.Status)
	}
}
