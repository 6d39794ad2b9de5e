package pgroles

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestConcurrentGrantsOnOneTable: replicas preparing the roles of
// different grants on the same table at the same moment (all of them hear
// of every activation at once) each update that table's ACL; none fails.
func TestConcurrentGrantsOnOneTable(t *testing.T) {
	need(t)
	const replicas, grants = 3, 6
	ms := make([]*Manager, replicas)
	for i := range ms {
		ms[i] = newReplicaManager(t, replicaKey)
	}
	var wg sync.WaitGroup
	errs := make(chan error, replicas*grants)
	start := make(chan struct{})
	for gi := range grants {
		g := newGrant(t, fmt.Sprintf("conc_tbl_%d", gi), time.Hour, "pg:select %s.public.customers")
		for _, m := range ms {
			wg.Go(func() {
				<-start
				if _, err := m.Ensure(testCtx(t), g); err != nil {
					errs <- fmt.Errorf("%s: %w", g.ID, err)
				}
			})
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for gi := range grants {
		if err := ms[0].Drop(testCtx(t), grantID(fmt.Sprintf("conc_tbl_%d", gi))); err != nil {
			t.Error(err)
		}
	}
}

// TestConcurrentDropFromReplicas: every replica that held a grant drops
// its role when it ends, all at the same moment; the role goes once and
// no replica reports an error.
func TestConcurrentDropFromReplicas(t *testing.T) {
	need(t)
	const replicas = 3
	ms := make([]*Manager, replicas)
	for i := range ms {
		ms[i] = newReplicaManager(t, replicaKey)
	}
	for round := range 4 {
		g := newGrant(t, fmt.Sprintf("conc_drop_%d", round), time.Hour, "pg:select %s.public.customers")
		var r Role
		for _, m := range ms {
			var err error
			if r, err = m.Ensure(testCtx(t), g); err != nil {
				t.Fatal(err)
			}
		}
		c := connectAs(t, r)
		var wg sync.WaitGroup
		errs := make(chan error, replicas)
		start := make(chan struct{})
		for _, m := range ms {
			wg.Go(func() {
				<-start
				if err := m.Drop(testCtx(t), g.ID); err != nil {
					errs <- err
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("round %d: %v", round, err)
		}
		if roleExists(t, r.Name) {
			t.Fatalf("round %d: role survived", round)
		}
		if _, err := c.Exec(testCtx(t), "SELECT 1"); err == nil {
			t.Fatalf("round %d: session survived", round)
		}
	}
}
