package grants_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReplicasReloadForbidOnce: every replica reloads on its own SIGHUP,
// here all at once, after a forbid matching an active grant is added.
// The grant is revoked once (the first replica's transaction wins, the
// others find it ended and write nothing) and cut off on every replica.
func TestReplicasReloadForbidOnce(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	g, cr := rs.approved(rs.r[0], rs.r[1])
	held := make([]*gateway.Grant, len(rs.r))
	for i, r := range rs.r {
		held[i] = waitLookup(t, r, cr)
	}
	rs.reloadAllWith(forbidProd)
	if st := rs.stored(g.ID); st.Status != model.Revoked || st.EndedBy != "policy" {
		t.Fatalf("grant after the reloads: %s by %q", st.Status, st.EndedBy)
	}
	if n := count(rs.entryTypes(g.ID), "grant.revoked"); n != 1 {
		t.Fatalf("%d grant.revoked entries, want 1: %v", n, rs.entryTypes(g.ID))
	}
	for i, r := range rs.r {
		waitClosed(t, held[i].Done(), 5*time.Second, r.name+"'s grant")
		if _, err := r.svc.Authority().Lookup(cr.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
			t.Errorf("%s still serves the credential: %v", r.name, err)
		}
	}
}

// TestReplicasReloadForbidPendingOnce: as TestReplicasReloadForbidOnce,
// for a pending request that the forbid matches. It is denied once: one
// new decision and one grant.denied entry, whichever replica wrote them,
// and it leaves the approvers' queue on every replica.
func TestReplicasReloadForbidPendingOnce(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	g, err := rs.r[0].svc.Request(rs.ctx, rs.r[0].id(t, bot), humanReq("20m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (status %s)", err, g.Status)
	}
	rs.reloadAllWith(forbidLogSecrets)
	if st := rs.stored(g.ID); st.Status != model.Denied || st.EndedBy != "policy" || st.Decision.Outcome != "deny" {
		t.Fatalf("request after the reloads: %s by %q (decision %s)", st.Status, st.EndedBy, st.Decision.Outcome)
	}
	types := rs.entryTypes(g.ID)
	if count(types, "grant.denied") != 1 || count(types, "grant.decided") != 2 {
		t.Fatalf("entries %v: want one denial and one new decision", types)
	}
	rs.checkQueuesEmpty(alice)
	checkStoreRows(t, rs.ctx, rs.r[0].st)
}

// TestReplicasReloadWithdrawnPendingOnce: as
// TestReplicasReloadForbidPendingOnce, for a pending request whose permit
// the reload withdrew, with no forbid: denied once, whichever replica
// wrote it, with one new decision, and gone from every replica's queue.
func TestReplicasReloadWithdrawnPendingOnce(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	g, err := rs.r[0].svc.Request(rs.ctx, rs.r[0].id(t, bot), humanReq("20m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (status %s)", err, g.Status)
	}
	rs.reloadAllWrite("test.cedar", withdrawnPolicies(t))
	if st := rs.stored(g.ID); st.Status != model.Denied || st.EndedBy != "policy" || st.Decision.Outcome != "deny" ||
		!strings.Contains(st.EndComment, "no policy permits") {
		t.Fatalf("request after the reloads: %s by %q (decision %s): %q", st.Status, st.EndedBy, st.Decision.Outcome, st.EndComment)
	}
	types := rs.entryTypes(g.ID)
	if count(types, "grant.denied") != 1 || count(types, "grant.decided") != 2 {
		t.Fatalf("entries %v: want one denial and one new decision", types)
	}
	rs.checkQueuesEmpty(alice)
	checkStoreRows(t, rs.ctx, rs.r[0].st)
}

// reloadAllWith adds policy file incident.cedar holding text and reloads
// every replica at once, as an operator's SIGHUP to each does.
func (rs *replicaSet) reloadAllWith(text string) {
	rs.t.Helper()
	rs.reloadAllWrite("incident.cedar", text)
}

// reloadAllWrite writes policy file name holding text and reloads every
// replica at once.
func (rs *replicaSet) reloadAllWrite(name, text string) {
	t := rs.t
	t.Helper()
	if err := os.WriteFile(filepath.Join(rs.polDir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(rs.r))
	for i, r := range rs.r {
		wg.Go(func() { errs[i] = r.svc.ReloadPolicies(rs.ctx, "SIGHUP") })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("reload on %s: %v", rs.r[i].name, err)
		}
	}
}

// checkQueuesEmpty checks that no replica lists a request for who to
// approve.
func (rs *replicaSet) checkQueuesEmpty(who string) {
	t := rs.t
	t.Helper()
	for _, r := range rs.r {
		var queue []model.Grant
		if err := r.svc.EachPending(rs.ctx, r.id(t, who), func(gs []model.Grant) error {
			queue = append(queue, gs...)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(queue) != 0 {
			t.Errorf("%s still lists %d requests for %s to approve", r.name, len(queue), who)
		}
	}
}
