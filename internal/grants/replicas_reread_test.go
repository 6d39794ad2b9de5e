package grants_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReplicasReconcileVersusReadInFlight: B is applying A's notice of a
// new active grant (its store read is done, its result not yet applied)
// when B's listening connection drops. While it is down, A revokes the
// grant; B never gets that notice. B reconnects and re-reads the open
// grants: the revoked grant is no longer open in the store, and not yet in
// B's memory, so the re-read passes it by. The notice's older read must
// not then activate the grant on B, which would serve the revoked
// credential until its expiry.
func TestReplicasReconcileVersusReadInFlight(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]

	// B's first read of a grant from now on is held until release.
	held, release := make(chan string, 1), make(chan struct{})
	var once sync.Once
	hook := func(id string) {
		if strings.HasPrefix(id, "g_") {
			once.Do(func() {
				held <- id
				<-release
			})
		}
	}
	b.st.afterGrant.Store(&hook)
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	g, err := a.svc.Request(rs.ctx, a.id(t, bot), autoReq("10m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("auto request on A: %v (%s)", err, g.Status)
	}
	cr, err := a.svc.Credentials(rs.ctx, a.id(t, bot), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-held:
		if id != g.ID {
			t.Fatalf("B read %s, want %s", id, g.ID)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("B never read the grant its notice named")
	}

	// B's listener drops; the revoke on A commits while it is down.
	resume := rs.killListener(b)
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "while B was deaf"); err != nil {
		t.Fatal(err)
	}
	resume()
	waitFor(t, "B to reconnect and re-read the open grants", func() bool { return b.svc.Ready() == nil })

	// The notice's read, older than the revoke, is applied now.
	unblock()
	time.Sleep(200 * time.Millisecond)
	if _, err := b.svc.Authority().Lookup(cr.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("B serves the credential of a grant revoked on A: %v", err)
	}
	if gg := b.svc.Authority().Grant(g.ID); gg != nil {
		t.Fatalf("B holds the revoked grant %s as active", g.ID)
	}
}

// TestReplicasReconcileVersusOwnActivation: as above, for a grant B
// activates itself (an automatic approval): B has committed it and not yet
// put it in memory when its listening connection drops; A revokes it
// meanwhile, and B's re-read passes it by. B must not then serve it.
func TestReplicasReconcileVersusOwnActivation(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]

	// B's request stops after its commit, before it is put in memory.
	held, release := make(chan string, 1), make(chan struct{})
	var once sync.Once
	b.svc.OnChange(func(c grants.Change) {
		if c.Type == "grant.activated" {
			once.Do(func() {
				held <- c.Grant.ID
				<-release
			})
		}
	})
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	type result struct {
		g   model.Grant
		err error
	}
	requested := make(chan result, 1)
	go func() {
		g, err := b.svc.Request(rs.ctx, b.id(t, bot), autoReq("10m"))
		requested <- result{g, err}
	}()
	var id string
	select {
	case id = <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("B never activated the grant")
	}
	cr, err := a.svc.Credentials(rs.ctx, a.id(t, bot), id)
	if err != nil {
		t.Fatal(err)
	}

	resume := rs.killListener(b)
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), id, "while B was deaf"); err != nil {
		t.Fatal(err)
	}
	resume()
	waitFor(t, "B to reconnect and re-read the open grants", func() bool { return b.svc.Ready() == nil })

	unblock()
	if r := <-requested; r.err != nil || r.g.Status != model.Active {
		t.Fatalf("request on B: %v (%s)", r.err, r.g.Status)
	}
	waitFor(t, "B to be ready", func() bool { return b.svc.Ready() == nil })
	if _, err := b.svc.Authority().Lookup(cr.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("B serves the credential of a grant revoked on A: %v", err)
	}
	if gg := b.svc.Authority().Grant(id); gg != nil {
		t.Fatalf("B holds the revoked grant %s as active", id)
	}
}
