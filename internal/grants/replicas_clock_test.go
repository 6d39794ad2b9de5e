package grants_test

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReplicasApproveSlowClock: a replica whose clock is an hour slow is
// asked to approve a request a minute after it was made, by its own clock.
// The request's decision deadline (ten minutes after it was made, by that
// clock) passed fifty minutes ago by the database's clock, which every
// replica shares, and by which the others would have cancelled it. The
// approval is refused, and the request ends cancelled at its deadline; no
// approval is recorded.
func TestReplicasApproveSlowClock(t *testing.T) {
	slow := clock.NewFake(time.Now().UTC().Add(-time.Hour))
	rs := newReplicaSet(t, 1, slow)
	a := rs.r[0]
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	slow.Advance(time.Minute)
	if !slow.Now().Before(g.DecideBy) || !time.Now().After(g.DecideBy) {
		t.Fatalf("the test's clocks: slow %v, real %v, deadline %v", slow.Now(), time.Now(), g.DecideBy)
	}
	out, err := a.svc.Approve(rs.ctx, a.id(t, alice), g.ID, "late")
	if !isConflict(err) {
		t.Fatalf("approve past the deadline by the database's clock: %v (status %s); want a conflict", err, out.Status)
	}
	st := rs.stored(g.ID)
	if st.Status != model.Cancelled || !st.EndedAt.Equal(g.DecideBy) {
		t.Errorf("stored %s ended %v, want cancelled at its deadline %v", st.Status, st.EndedAt, g.DecideBy)
	}
	types := rs.entryTypes(g.ID)
	if count(types, "grant.approved") != 0 || count(types, "grant.activated") != 0 || count(types, "grant.cancelled") != 1 {
		t.Errorf("log of the request: %v", types)
	}
	if gg := a.svc.Authority().Grant(g.ID); gg != nil {
		t.Errorf("the overdue request is active in memory")
	}
}
