package grants_test

import (
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReplicasStartConfigEndsOnce (PostgreSQL): two replicas restarted at
// once with a configuration that removed aws-dev and lowered
// grants.max_duration end the request longer than the cap and the grant on
// aws-dev once each, by "config": one end entry per grant among them. The
// requester's wait on the third replica, still running, hears the denial.
func TestReplicasStartConfigEndsOnce(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	bot0 := rs.r[0].id(t, bot)
	long, err := rs.r[0].svc.Request(rs.ctx, bot0, humanReq("30m"))
	if err != nil || long.Status != model.Pending {
		t.Fatalf("request: %v (status %s)", err, long.Status)
	}
	dev, err := rs.r[0].svc.Request(rs.ctx, bot0, grants.RequestInput{Target: awsDev, Scope: []string{"s3:GetObject arn:aws:s3:::dev/*"}, Duration: "10m", Reason: "r"})
	if err != nil || dev.Status != model.Active {
		t.Fatalf("request on aws-dev: %v (status %s)", err, dev.Status)
	}
	waited := make(chan model.Grant, 1)
	go func() {
		g, _ := rs.r[2].svc.Wait(rs.ctx, rs.r[2].id(t, bot), long.ID, time.Minute)
		waited <- g
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, n := rs.r[2].svc.OpenWaits(); n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the requester's wait never started")
		}
	}

	rs.opts = append(rs.opts, func(o *grants.Options) {
		o.Targets = []grants.Target{testTargets[0], testTargets[2]} // aws-dev removed
		o.MaxDuration = 20 * time.Minute
	})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { rs.restart(i, nil) })
	}
	wg.Wait()

	for _, c := range []struct {
		id     string
		status model.GrantStatus
		entry  string
	}{{long.ID, model.Denied, "grant.denied"}, {dev.ID, model.Revoked, "grant.revoked"}} {
		if st := rs.stored(c.id); st.Status != c.status || st.EndedBy != "config" {
			t.Errorf("%s after the restarts: %s by %q: %q", c.id, st.Status, st.EndedBy, st.EndComment)
		}
		if types := rs.entryTypes(c.id); count(types, c.entry) != 1 {
			t.Errorf("%s: entries %v, want one %s", c.id, types, c.entry)
		}
	}
	checkWaitDenied(t, waited)
	rs.checkQueuesEmpty(alice)
	checkStoreRows(t, rs.ctx, rs.r[0].st)
}
