package grants_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// The identity counterparts of replicas_reread_test.go: a disable (or any
// identity change: a key replaced, a group taken away) must not be undone
// on a replica by an older read of the identity put in its directory after
// the change was.

// addLateBot adds an agent on a, waits until every replica authenticates
// it, and returns its key.
func addLateBot(t *testing.T, rs *replicaSet, a *replica) string {
	t.Helper()
	lead := a.id(t, alice)
	lead.Groups = append(lead.Groups, "sre-team") // a person adds agents only into their own groups
	_, key, err := a.svc.AddAgent(rs.ctx, lead, "late-bot", "sre-team", []string{"sre-team"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs.r {
		waitFor(t, r.name+" to know the agent added on "+a.name, func() bool {
			_, ok := r.dir.Authenticate(key)
			return ok
		})
	}
	return key
}

// holdFirst returns a hook that holds the first call whose argument is
// want until release, reporting it on held, and release (idempotent, also
// run at clean-up).
func holdFirst(t *testing.T, want string) (hook func(string), held chan struct{}, release func()) {
	held, rel := make(chan struct{}), make(chan struct{})
	var once, released sync.Once
	hook = func(got string) {
		if got == want {
			once.Do(func() {
				close(held)
				<-rel
			})
		}
	}
	release = func() { released.Do(func() { close(rel) }) }
	t.Cleanup(release)
	return hook, held, release
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(30 * time.Second):
		t.Fatalf("waited 30 s for %s", what)
	}
}

// TestReplicasReconcileVersusIdentityReadInFlight: B is applying A's notice
// of an added agent (its read of the identity is done, not yet put in the
// directory) when B's listening connection drops. While it is down, A
// disables the agent; B never gets that notice. B reconnects and re-reads
// the identities. The notice's older read, put after that, must not enable
// the agent on B again.
func TestReplicasReconcileVersusIdentityReadInFlight(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	hook, held, release := holdFirst(t, "late-bot")
	b.st.afterIdentity.Store(&hook)
	lead := a.id(t, alice)
	lead.Groups = append(lead.Groups, "sre-team")
	_, key, err := a.svc.AddAgent(rs.ctx, lead, "late-bot", "sre-team", []string{"sre-team"})
	if err != nil {
		t.Fatal(err)
	}
	waitChan(t, held, "B to read the agent its notice named")

	reread := make(chan struct{}, 1)
	signal := func() {
		select {
		case reread <- struct{}{}:
		default:
		}
	}
	b.st.afterIdentities.Store(&signal)
	resume := rs.killListener(b)
	if _, err := a.svc.DisableAgent(rs.ctx, a.id(t, alice), "late-bot", "compromised while B was deaf"); err != nil {
		t.Fatal(err)
	}
	resume()
	waitChan(t, reread, "B to re-read the identities")
	time.Sleep(200 * time.Millisecond) // B's re-read puts what it read (or waits for the read in flight)

	release() // the notice's read, older than the disable, is applied now
	waitFor(t, "B to be ready", func() bool { return b.svc.Ready() == nil })
	time.Sleep(100 * time.Millisecond)
	if _, ok := b.dir.Authenticate(key); ok {
		t.Fatal("B authenticates an agent disabled on A")
	}
	if id, ok := b.dir.Lookup("late-bot"); !ok || !id.Disabled {
		t.Fatalf("B's directory has the agent disabled on A as %+v (%v)", id, ok)
	}
}

// TestReplicasRetriedReconcileVersusIdentityNotice: a notice B could not
// apply makes it re-read everything again while its listener keeps
// applying notices. Its read of all identities is older than A's disable
// of an agent, whose notice B applies meanwhile; the re-read must not put
// the agent back enabled.
func TestReplicasRetriedReconcileVersusIdentityNotice(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	key := addLateBot(t, rs, a)

	// B fails to apply the next grant notice, once: it retries a re-read.
	var failOnce sync.Once
	fail := func(id string) error {
		var err error
		failOnce.Do(func() { err = errors.New("injected: the store did not answer") })
		return err
	}
	hook, held, release := holdFirst(t, "all")
	all := func() { hook("all") }
	b.st.afterIdentities.Store(&all)
	b.st.failGrant.Store(&fail)
	if g, err := a.svc.Request(rs.ctx, a.id(t, bot), autoReq("10m")); err != nil || g.Status != model.Active {
		t.Fatalf("auto request on A: %v (%s)", err, g.Status)
	}
	waitChan(t, held, "B's retried re-read to read the identities")

	if _, err := a.svc.DisableAgent(rs.ctx, a.id(t, alice), "late-bot", "compromised"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "B to apply the disable's notice", func() bool {
		_, ok := b.dir.Authenticate(key)
		return !ok
	})
	release() // the re-read's older read of the identities goes on
	waitFor(t, "B to be ready", func() bool { return b.svc.Ready() == nil })
	if _, ok := b.dir.Authenticate(key); ok {
		t.Fatal("B's re-read enabled again an agent disabled on A")
	}
}

// TestReplicasDisableVersusIdentityNoticeInFlight: B is applying a notice
// of an agent (its read done, not yet put) when an agent disable on B
// itself commits. B's own change has no notice for B; the notice's older
// read must not be put over it.
func TestReplicasDisableVersusIdentityNoticeInFlight(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	hook, held, release := holdFirst(t, "late-bot")
	b.st.afterIdentity.Store(&hook)
	lead := a.id(t, alice)
	lead.Groups = append(lead.Groups, "sre-team")
	_, key, err := a.svc.AddAgent(rs.ctx, lead, "late-bot", "sre-team", []string{"sre-team"})
	if err != nil {
		t.Fatal(err)
	}
	waitChan(t, held, "B to read the agent its notice named")

	disabled := make(chan error, 1)
	go func() {
		_, err := b.svc.DisableAgent(rs.ctx, b.id(t, alice), "late-bot", "compromised")
		disabled <- err
	}()
	waitFor(t, "the disable on B to commit", func() bool {
		id, err := a.st.Identity(rs.ctx, "late-bot")
		return err == nil && id.Disabled
	})
	time.Sleep(100 * time.Millisecond) // B puts the disabled agent in its directory (or waits for the read in flight)
	release()
	select {
	case err := <-disabled:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("DisableAgent on B did not return")
	}
	time.Sleep(200 * time.Millisecond) // the notice's older read is put (or was, before the disable's)
	if _, ok := b.dir.Authenticate(key); ok {
		t.Fatal("B authenticates the agent it disabled itself")
	}
}

// TestReplicasBindingChangeLoggedOnce: replicas read the same airlock.yaml
// at their starts. A change of alice's Slack member id is one
// identity.updated entry however many replicas start on the edited file,
// at once or one after another (each compares the file with the row the
// first one wrote, in the transaction that would write the entry), and the
// others' directories learn the new bindings. The state check of audit
// verify then finds the rows as the log states them.
func TestReplicasBindingChangeLoggedOnce(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	updates := func() []map[string]any {
		t.Helper()
		es, err := rs.r[0].st.LogEntries(rs.ctx, store.LogFilter{Type: "identity.updated"})
		if err != nil {
			t.Fatal(err)
		}
		return identityUpdates(t, es, alice)
	}
	setBindings(rs.cfg, alice, &model.Bindings{Email: "alice@example.com", SlackUser: "U0MALLORY"})
	var wg sync.WaitGroup
	errs := make(chan error, len(rs.r))
	for _, r := range rs.r {
		wg.Go(func() { errs <- r.svc.SyncIdentities(rs.ctx, rs.cfg) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rs.restart(1, clock.Real)
	if u := updates(); len(u) != 1 || u[0]["slack_user"] != "U0MALLORY" {
		t.Fatalf("three replicas syncing and one restarting on the edited file: identity.updated entries for alice %v, want one", u)
	}
	for _, r := range rs.r {
		waitFor(t, r.name+" to know alice's new bindings", func() bool {
			id, ok := r.dir.Lookup(alice)
			return ok && id.Bindings != nil && id.Bindings.SlackUser == "U0MALLORY"
		})
	}
	checkStoreRows(t, rs.ctx, rs.r[0].st)
}
