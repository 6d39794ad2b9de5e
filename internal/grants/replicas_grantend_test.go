package grants_test

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasSessionGrantEnd: B serves a session under a grant that A
// then revokes, before B hears of it (its listener is down). B then cuts
// the grant off for a reason of its own: the holder ends it through B (B
// reads the revoked record, but cut the grant off as "ended" all the
// same), or B's expiry timer runs. The session's session.ended entry gave
// B's reason as its grant_end, where the grant's record, and every other
// replica's sessions, say "revoked". It now gives the record's reason,
// read in the transaction that records the end; and an end through B of a
// grant whose record B read as revoked cuts it off as revoked.
func TestReplicasSessionGrantEnd(t *testing.T) {
	for _, c := range []struct {
		name string
		cut  func(rs *replicaSet, fake *clock.Fake, b *replica, g model.Grant)
		// cutFor is why B's gateways tell their clients the grant ended,
		// where B knows ("" where it cannot: its own timer ran).
		cutFor string
	}{
		{"the holder ends it through B", func(rs *replicaSet, _ *clock.Fake, b *replica, g model.Grant) {
			if _, err := b.svc.End(rs.ctx, b.id(rs.t, bot), g.ID, "done"); !isConflict(err) {
				rs.t.Fatalf("end through B of a grant A revoked: %v; want a conflict", err)
			}
		}, "revoked"},
		{"B's expiry timer runs", func(_ *replicaSet, fake *clock.Fake, _ *replica, g model.Grant) {
			fake.Set(g.ExpiresAt.Add(time.Second))
		}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			fake := clock.NewFake(time.Now().UTC())
			rs := newReplicaSet(t, 2, fake)
			a, b := rs.r[0], rs.r[1]
			g, cr := rs.approved(a, a)
			g = rs.stored(g.ID)
			ses := rs.servedSession(b, cr, "127.0.0.1:1 on B")
			onB := b.svc.Authority().Grant(g.ID)
			release := rs.killListener(b)
			if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "revoked on A"); err != nil {
				t.Fatal(err)
			}
			c.cut(rs, fake, b, g)
			if !isClosed(onB.Done()) {
				t.Fatal("B did not cut the grant off")
			}
			if c.cutFor != "" && onB.EndReason() != c.cutFor {
				t.Errorf("B cut the grant off as %q; its record says %q", onB.EndReason(), c.cutFor)
			}
			if err := ses.End(rs.ctx); err != nil {
				t.Fatal(err)
			}
			release()
			if st := rs.stored(g.ID); st.Status != model.Revoked {
				t.Fatalf("the grant's record: %s", st.Status)
			}
			es, err := a.st.LogEntries(rs.ctx, store.LogFilter{SessionID: ses.ID})
			if err != nil {
				t.Fatal(err)
			}
			last := es[len(es)-1]
			if d := entryData(t, last); last.Type != "session.ended" || d["grant_end"] != "revoked" {
				t.Errorf("B's session ended with %s %v; want grant_end revoked, as the grant's record says", last.Type, d)
			}
		})
	}
}
