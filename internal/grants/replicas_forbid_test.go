package grants_test

import (
	"errors"
	"os"
	"path/filepath"
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
	if err := os.WriteFile(filepath.Join(rs.polDir, "incident.cedar"), []byte(forbidProd), 0o644); err != nil {
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
