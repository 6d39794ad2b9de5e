package grants_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/note"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/airlock-dev/airlock/internal/authn"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/policy"
	"github.com/airlock-dev/airlock/internal/review"
	"github.com/airlock-dev/airlock/internal/store"
	"github.com/airlock-dev/airlock/internal/store/pgstore"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// Several replicas in one test process: each replica is a grants.Service
// with its own pgstore pool, policy engine, directory and change listener,
// all on one PostgreSQL database, as separate `airlock serve` processes
// would be.

// testNotifier wraps a replica's pgstore.Listener so that a test can make
// it deaf (changes are not applied: Lookup must read the store) or hold it
// down after its connection is lost.
type testNotifier struct {
	inner *pgstore.Listener
	deaf  atomic.Bool
	// onLost, if set, runs (on the listener's goroutine, before it
	// reconnects) each time the connection is lost.
	onLost atomic.Pointer[func()]
}

func (n *testNotifier) Run(ctx context.Context, changed func(string, string), connected func(context.Context) error, lost func(error)) {
	n.inner.Run(ctx, func(id, origin string) {
		if !n.deaf.Load() {
			changed(id, origin)
		}
	}, connected, func(err error) {
		lost(err)
		if f := n.onLost.Load(); f != nil {
			(*f)()
		}
	})
}

// countingStore counts the credential reads of cache misses. afterGrant,
// if set, runs after each read of one grant (Grant), before it returns.
// failGrant, if set, runs before each read of one grant and fails it with
// its error. afterIdentity and afterIdentities run after each read of one
// identity (Identity) and of all of them (Identities), before they return.
type countingStore struct {
	*pgstore.Store
	reads           atomic.Int64
	afterGrant      atomic.Pointer[func(id string)]
	failGrant       atomic.Pointer[func(id string) error]
	afterIdentity   atomic.Pointer[func(name string)]
	afterIdentities atomic.Pointer[func()]
	// slotsCut makes the session slots' calls fail as a store out of
	// reach does, slotsHang wait for their context as a store that does
	// not answer (replicas_slots_test.go).
	slotsCut, slotsHang atomic.Bool
	// beforeOpenSessions runs before each OpenSessions (a sweep's first
	// read), so that a test can hold a sweep back.
	beforeOpenSessions atomic.Pointer[func()]
}

func (c *countingStore) OpenSessions(ctx context.Context) ([]model.Session, error) {
	if f := c.beforeOpenSessions.Load(); f != nil {
		(*f)()
	}
	return c.Store.OpenSessions(ctx)
}

func (c *countingStore) Grant(ctx context.Context, id string) (model.Grant, error) {
	if f := c.failGrant.Load(); f != nil {
		if err := (*f)(id); err != nil {
			return model.Grant{}, err
		}
	}
	g, err := c.Store.Grant(ctx, id)
	if f := c.afterGrant.Load(); f != nil {
		(*f)(id)
	}
	return g, err
}

func (c *countingStore) Identity(ctx context.Context, name string) (model.Identity, error) {
	id, err := c.Store.Identity(ctx, name)
	if f := c.afterIdentity.Load(); f != nil {
		(*f)(name)
	}
	return id, err
}

func (c *countingStore) Identities(ctx context.Context) ([]model.Identity, error) {
	ids, err := c.Store.Identities(ctx)
	if f := c.afterIdentities.Load(); f != nil {
		(*f)()
	}
	return ids, err
}

func (c *countingStore) GrantByCredential(ctx context.Context, id string) (model.Grant, error) {
	c.reads.Add(1)
	return c.Store.GrantByCredential(ctx, id)
}

type replica struct {
	name     string
	st       *countingStore
	log      *auditlog.Log
	dir      *authn.Directory
	svc      *grants.Service
	notifier *testNotifier
}

type replicaSet struct {
	t   testing.TB
	ctx context.Context
	dsn string
	r   []*replica

	// What startReplica needs.
	polDir   string
	signer   note.Signer
	verifier note.Verifier
	credKey  []byte
	cfg      []model.Identity
	known    map[string]bool
	opts     []func(*grants.Options)
	// logStore, if set, wraps the store each replica's log writes
	// through (to inject write failures).
	logStore func(store.Store) store.Store
}

// newReplicaSet starts n replicas on a fresh database. With fake, they all
// run on that clock.
func newReplicaSet(t testing.TB, n int, fake *clock.Fake, opts ...func(*grants.Options)) *replicaSet {
	t.Helper()
	clocks := make([]clock.Clock, n)
	if fake != nil {
		for i := range clocks {
			clocks[i] = fake
		}
	}
	return newReplicaSetClocks(t, clocks, opts...)
}

// newReplicaSetClocks starts a replica per clock on a fresh database:
// replica i runs on clocks[i], or on the real clock if it is nil.
func newReplicaSetClocks(t testing.TB, clocks []clock.Clock, opts ...func(*grants.Options)) *replicaSet {
	t.Helper()
	n := len(clocks)
	admin := testenv.PostgresDSN(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("replicas_grants_%d_%d", os.Getpid(), time.Now().UnixNano())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("dropping %s: %v", db, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)"); err != nil {
			t.Errorf("dropping %s: %v", db, err)
		}
	})
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	rs := &replicaSet{t: t, ctx: ctx, dsn: u.String()}

	dir := t.TempDir()
	polDir := filepath.Join(dir, "policies")
	if err := os.MkdirAll(polDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(polDir, "test.cedar"), []byte(testPolicies), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, verifier, err := auditlog.LoadOrCreateKey(dir, "airlock")
	if err != nil {
		t.Fatal(err)
	}
	credKey := []byte("replicas-test-credential-key-32b!")
	var cfg []model.Identity
	for _, id := range []model.Identity{
		{Name: bot, Kind: model.Agent, Owner: "sre-team"},
		{Name: alice, Kind: model.Human, Groups: []string{"sre-leads"}},
		{Name: carol, Kind: model.Human, Groups: []string{"sre-leads"}},
	} {
		_, id.KeySHA256 = authn.NewKey()
		cfg = append(cfg, id)
	}
	known := map[string]bool{}
	for _, tg := range testTargets {
		known[tg.Name] = true
	}
	rs.polDir, rs.signer, rs.verifier, rs.credKey, rs.cfg, rs.known, rs.opts = polDir, signer, verifier, credKey, cfg, known, opts
	for i := range n {
		var clk clock.Clock = clock.Real
		if clocks[i] != nil {
			clk = clocks[i]
		}
		rs.r = append(rs.r, rs.startReplica(fmt.Sprintf("r%d", i), clk))
	}
	t.Cleanup(func() {
		// The log the replicas wrote together verifies as one.
		if rep, err := auditlog.Verify(ctx, rs.r[0].st, verifier, nil); err != nil || !rep.OK || rep.Entries == 0 {
			t.Errorf("audit log verification: %v (%+v)", err, rep)
		}
		for _, r := range rs.r {
			r.svc.Close()
			if err := r.log.Close(); err != nil {
				t.Errorf("%s: closing the log: %v", r.name, err)
			}
			r.st.Close()
		}
	})
	return rs
}

// startReplica starts replica name on clk, on rs's database.
func (rs *replicaSet) startReplica(name string, clk clock.Clock) *replica {
	t, ctx := rs.t, rs.ctx
	t.Helper()
	r := &replica{name: name}
	ps, err := pgstore.Open(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	r.st = &countingStore{Store: ps}
	// Each replica appends to the one shared log through a Log of its
	// own, as separate processes do.
	var logSt store.Store = ps
	if rs.logStore != nil {
		logSt = rs.logStore(ps)
	}
	r.log, err = auditlog.Open(ctx, logSt, rs.signer, auditlog.Options{Origin: "airlock/replicas-test", Shared: true, Verifier: rs.verifier, Rows: review.StoreRows})
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.NewEngine(rs.polDir, func(n string) bool { return rs.known[n] })
	if err != nil {
		t.Fatal(err)
	}
	r.dir = authn.NewDirectory(nil)
	r.notifier = &testNotifier{inner: ps.Listener(r.name)}
	o := grants.Options{
		Store: r.st, Log: r.log, Policy: pol, Directory: r.dir, Targets: testTargets,
		MaxDuration: 30 * time.Minute, PendingTimeout: 10 * time.Minute, RequireReason: true,
		CredentialKey: rs.credKey, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Notifier: r.notifier, ReplicaID: r.name,
	}
	for _, f := range rs.opts {
		f(&o)
	}
	r.svc, err = grants.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.svc.SyncIdentities(ctx, rs.cfg); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Ready(); err != nil {
		t.Fatalf("%s: Start returned but not ready: %v", r.name, err)
	}
	return r
}

// restart stops replica i, leaving its sessions open as a crash does, and
// starts it again under the same name on clk.
func (rs *replicaSet) restart(i int, clk clock.Clock) *replica {
	rs.t.Helper()
	old := rs.r[i]
	old.svc.Close()
	if err := old.log.Close(); err != nil {
		rs.t.Errorf("%s: closing the log: %v", old.name, err)
	}
	old.st.Close()
	rs.r[i] = rs.startReplica(old.name, clk)
	return rs.r[i]
}

func (r *replica) id(t testing.TB, name string) model.Identity {
	t.Helper()
	id, ok := r.dir.Lookup(name)
	if !ok {
		t.Fatalf("%s: no identity %q", r.name, name)
	}
	return id
}

// entryTypes lists the log's grant.* entry types of grant id.
func (rs *replicaSet) entryTypes(id string) []string {
	rs.t.Helper()
	es, err := rs.r[0].st.LogEntries(rs.ctx, store.LogFilter{GrantID: id})
	if err != nil {
		rs.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if strings.HasPrefix(e.Type, "grant.") && e.Type != "grant.credentials_issued" {
			out = append(out, e.Type)
		}
	}
	return out
}

func (rs *replicaSet) stored(id string) model.Grant {
	rs.t.Helper()
	g, err := rs.r[0].st.Grant(rs.ctx, id)
	if err != nil {
		rs.t.Fatal(err)
	}
	return g
}

// approved requests a grant on req and approves it on by; it returns the
// grant and its credentials.
func (rs *replicaSet) approved(req, by *replica) (model.Grant, grants.Credentials) {
	t := rs.t
	t.Helper()
	g, err := req.svc.Request(rs.ctx, req.id(t, bot), humanReq("20m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request on %s: %v (status %s)", req.name, err, g.Status)
	}
	if _, err := by.svc.Approve(rs.ctx, by.id(t, alice), g.ID, "ok"); err != nil {
		t.Fatalf("approve on %s: %v", by.name, err)
	}
	cr, err := by.svc.Credentials(rs.ctx, by.id(t, bot), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	return g, cr
}

// waitLookup polls r until it serves cred (the notice may still be on its
// way; a miss reads the store anyway).
func waitLookup(t testing.TB, r *replica, cred grants.Credentials) *gateway.Grant {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		gg, err := r.svc.Authority().Authenticate(cred.AccessKeyID, cred.SecretAccessKey)
		if err == nil {
			return gg
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: credential of %s not served: %v", r.name, cred.GrantID, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReplicasRequestApproveUse: requested on A, approved on B, used on C,
// and C learns of the grant by its notice (it is in C's gateway cache, with
// Subscribe's callback run, before anyone presents the credential there).
func TestReplicasRequestApproveUse(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	subscribed := make(chan string, 8)
	c.svc.Authority().Subscribe(func(g *gateway.Grant) { subscribed <- g.ID })
	// The requester long-polls C while a person approves on B.
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan model.Grant, 1)
	go func() {
		w, err := c.svc.Wait(rs.ctx, c.id(t, bot), g.ID, 10*time.Second)
		if err != nil {
			t.Error(err)
		}
		waited <- w
	}()
	waitFor(t, "the wait to open on C", func() bool { _, n := c.svc.OpenWaits(); return n == 1 })
	start := time.Now()
	if _, err := b.svc.Approve(rs.ctx, b.id(t, alice), g.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-waited:
		if w.Status != model.Active {
			t.Fatalf("the wait on C returned %s", w.Status)
		}
		t.Logf("approve on B to the long poll on C returning: %v", time.Since(start))
	case <-time.After(5 * time.Second):
		t.Fatal("the long poll on C did not see the approval on B")
	}
	cr, err := b.svc.Credentials(rs.ctx, b.id(t, bot), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-subscribed:
		if id != g.ID {
			t.Fatalf("C's Subscribe saw %s, want %s", id, g.ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("C never activated the grant approved on B")
	}
	gg, err := c.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey)
	if err != nil {
		t.Fatalf("C refuses the credential approved on B: %v", err)
	}
	if gg.ID != g.ID || !gg.Live(time.Now()) {
		t.Fatalf("C serves %s (live %v)", gg.ID, gg.Live(time.Now()))
	}
	if n := c.st.reads.Load(); n != 0 {
		t.Errorf("C read the store %d times for a grant its notice brought", n)
	}
	if _, err := c.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey+"x"); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("C accepted a wrong secret: %v", err)
	}
	if got := rs.entryTypes(g.ID); !slices.Equal(got, []string{"grant.requested", "grant.decided", "grant.approved", "grant.activated"}) {
		t.Errorf("log of %s: %v", g.ID, got)
	}
}

// TestReplicasCacheMiss: a replica that missed the notice reads the store
// on the credential's first use, and only then; unknown credentials cost
// one read per negative-cache period, and malformed ones none.
func TestReplicasCacheMiss(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	c.notifier.deaf.Store(true)
	var subscribed atomic.Int32
	c.svc.Authority().Subscribe(func(*gateway.Grant) { subscribed.Add(1) })
	g, cr := rs.approved(a, b)
	gg, err := c.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey)
	if err != nil {
		t.Fatalf("C (deaf) refuses the credential: %v", err)
	}
	if gg.ID != g.ID || c.st.reads.Load() != 1 || subscribed.Load() != 1 {
		t.Fatalf("C served %s after %d store reads and %d Subscribe calls; want %s, 1, 1", gg.ID, c.st.reads.Load(), subscribed.Load(), g.ID)
	}
	for range 20 {
		if _, err := c.svc.Authority().Lookup(cr.AccessKeyID); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.st.reads.Load(); n != 1 {
		t.Fatalf("a loaded grant was read again: %d reads", n)
	}

	const bogus = "AKALAAAAAAAAAAAAAAAA" // well-formed, never issued
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if _, err := c.svc.Authority().Lookup(bogus); !errors.Is(err, gateway.ErrNoGrant) {
				t.Errorf("bogus credential: %v", err)
			}
		})
	}
	wg.Wait()
	if n := c.st.reads.Load() - 1; n != 1 {
		t.Errorf("50 lookups of one unknown credential read the store %d times, want 1", n)
	}
	for _, bad := range []string{"", "x", "AKIAIOSFODNN7EXAMPLE", "AKALaaaaaaaaaaaaaaaa", strings.Repeat("A", 4096)} {
		if _, err := c.svc.Authority().Lookup(bad); !errors.Is(err, gateway.ErrNoGrant) {
			t.Errorf("malformed credential %q: %v", bad, err)
		}
	}
	if n := c.st.reads.Load() - 2; n != 0 {
		t.Errorf("malformed credentials read the store %d times", n)
	}

	// A grant that ended is not loaded by a miss either.
	g2, cr2 := rs.approved(a, b)
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g2.ID, "done"); err != nil {
		t.Fatal(err)
	}
	before := c.st.reads.Load()
	if _, err := c.svc.Authority().Lookup(cr2.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Errorf("C (deaf) serves a revoked grant's credential: %v", err)
	}
	if c.st.reads.Load() != before+1 {
		t.Errorf("the revoked grant's credential was not read from the store")
	}

	// A flood of distinct well-formed credentials reads the store at a
	// bounded rate (burst 100, then 100 a second), not once each.
	before, start := c.st.reads.Load(), time.Now()
	for i := range 2000 {
		id := strings.Map(func(r rune) rune { return 'A' + (r - '0') }, fmt.Sprintf("%016d", i))
		if _, err := c.svc.Authority().Lookup("AKAL" + id); !errors.Is(err, gateway.ErrNoGrant) {
			t.Fatalf("flood credential %d: %v", i, err)
		}
	}
	limit := 100 + 100*time.Since(start).Seconds() + 1
	if n := c.st.reads.Load() - before; float64(n) > limit {
		t.Errorf("2000 distinct unknown credentials read the store %d times (limit %.0f)", n, limit)
	} else {
		t.Logf("2000 distinct unknown credentials in %v: %d store reads", time.Since(start), n)
	}
}

// TestReplicasRevokeCutsEverywhere: revoke (or end) on A ends C's
// gateway.Grant, which closes its open transfers and sessions, within a
// second. It measures the delay from the call on A to Done closing on C.
func TestReplicasRevokeCutsEverywhere(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	const rounds = 10
	var delays []time.Duration
	for i := range rounds {
		g, cr := rs.approved(a, b)
		gg := waitLookup(t, c, cr)
		start := time.Now()
		var err error
		if i%2 == 0 {
			_, err = a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "incident over")
		} else {
			_, err = a.svc.End(rs.ctx, a.id(t, bot), g.ID, "done")
		}
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-gg.Done():
		case <-time.After(time.Second):
			t.Fatalf("round %d: C's grant still open 1 s after the revoke on A", i)
		}
		delays = append(delays, time.Since(start))
		if _, err := c.svc.Authority().Lookup(cr.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
			t.Fatalf("round %d: C still serves the credential: %v", i, err)
		}
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	t.Logf("revoke/end on A to Done on C, %d rounds: min %v, median %v, max %v (includes A's commit)",
		rounds, delays[0], delays[rounds/2], delays[rounds-1])
}

// TestReplicasListenerLost: C's listening connection is killed. C is not
// ready, and refuses every credential, until it has reconnected and
// re-read the open grants; a revoke made on A meanwhile (whose notice C
// never received) is applied by that re-read.
func TestReplicasListenerLost(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	g, cr := rs.approved(a, b)
	gg := waitLookup(t, c, cr)
	g2, cr2 := rs.approved(a, b)
	waitLookup(t, c, cr2)

	release := rs.killListener(c)
	if err := c.svc.Ready(); err == nil {
		t.Fatal("C reports ready with its listener down")
	}
	if _, err := c.svc.Authority().Lookup(cr2.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("C serves a credential with its listener down: %v", err)
	}
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "while C was deaf"); err != nil {
		t.Fatal(err)
	}
	// Give a notice time to arrive, were there any way for it to: there is
	// none, so the grant must still be open on C until it reconciles.
	time.Sleep(100 * time.Millisecond)
	if isClosed(gg.Done()) {
		t.Fatal("C ended the grant without a listener: the test does not test the re-read")
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for c.svc.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("C not ready again: %v", c.svc.Ready())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !isClosed(gg.Done()) {
		t.Fatal("C is ready again but the grant revoked while its listener was down is still open")
	}
	if _, err := c.svc.Authority().Lookup(cr.AccessKeyID); !errors.Is(err, gateway.ErrNoGrant) {
		t.Fatalf("C serves the revoked credential after reconciling: %v", err)
	}
	if _, err := c.svc.Authority().Lookup(cr2.AccessKeyID); err != nil {
		t.Fatalf("C refuses the other, live grant after reconciling: %v", err)
	}
	_ = g2
}

// TestReplicasDecisionRace: two replicas decide the same grant at once,
// many times over. Exactly one decision wins, the loser gets a conflict
// naming the state the grant is in, and the log and the stored row agree.
func TestReplicasDecisionRace(t *testing.T) {
	rs := newReplicaSet(t, 2, nil)
	a, b := rs.r[0], rs.r[1]
	const rounds = 20
	for i := range rounds {
		g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
		if err != nil {
			t.Fatal(err)
		}
		var errA, errB error
		var wg sync.WaitGroup
		wg.Go(func() { _, errA = a.svc.Approve(rs.ctx, a.id(t, alice), g.ID, "go") })
		wg.Go(func() { _, errB = b.svc.Deny(rs.ctx, b.id(t, carol), g.ID, "no") })
		wg.Wait()
		winner := oneWinner(t, i, "approve", errA, "deny", errB)
		st := rs.stored(g.ID)
		types := rs.entryTypes(g.ID)
		nApproved, nDenied := count(types, "grant.approved"), count(types, "grant.denied")
		switch {
		case winner == "approve" && (st.Status != model.Active || nApproved != 1 || nDenied != 0),
			winner == "deny" && (st.Status != model.Denied || nApproved != 0 || nDenied != 1):
			t.Fatalf("round %d: %s won but the row is %s and the log %v", i, winner, st.Status, types)
		}
		if winner != "approve" {
			continue
		}
		// Then two revokes, on either replica, and the holder's end.
		var errR1, errR2 error
		wg.Go(func() { _, errR1 = a.svc.Revoke(rs.ctx, a.id(t, alice), g.ID, "one") })
		wg.Go(func() { _, errR2 = b.svc.Revoke(rs.ctx, b.id(t, carol), g.ID, "two") })
		wg.Wait()
		oneWinner(t, i, "revoke on A", errR1, "revoke on B", errR2)
		if st := rs.stored(g.ID); st.Status != model.Revoked || count(rs.entryTypes(g.ID), "grant.revoked") != 1 {
			t.Fatalf("round %d: row %s, log %v after racing revokes", i, st.Status, rs.entryTypes(g.ID))
		}
		if _, err := b.svc.End(rs.ctx, b.id(t, bot), g.ID, "late"); !isConflict(err) {
			t.Fatalf("round %d: ending a revoked grant: %v", i, err)
		}
	}
}

// oneWinner checks that exactly one of two racing calls succeeded and the
// other was refused with a conflict that says why; it returns the winner.
func oneWinner(t *testing.T, round int, nameA string, errA error, nameB string, errB error) string {
	t.Helper()
	if (errA == nil) == (errB == nil) {
		t.Fatalf("round %d: %s: %v; %s: %v; want exactly one to succeed", round, nameA, errA, nameB, errB)
	}
	winner, loser := nameA, errB
	if errA != nil {
		winner, loser = nameB, errA
	}
	var ae *apierr.Error
	if !errors.As(loser, &ae) || ae.Code != apierr.CodeConflict || !strings.Contains(ae.Message, "cannot") {
		t.Fatalf("round %d: the loser got %v, want a conflict saying what it cannot do", round, loser)
	}
	return winner
}

// TestReplicasExpireOnce: every replica arms its own timer for a grant's
// expiry (and a request's decision deadline) on the same fake clock. All
// of them cut the grant at that instant; the log records the end once.
func TestReplicasExpireOnce(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	rs := newReplicaSet(t, 3, fake)
	a := rs.r[0]
	// armed waits until each replica has armed a timer for the new grant.
	armed := func(before int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for fake.Pending() < before+len(rs.r) {
			if time.Now().After(deadline) {
				t.Fatalf("%d timers armed, want %d", fake.Pending(), before+len(rs.r))
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	before := fake.Pending()
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), autoReq("10m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("auto request: %v (%s)", err, g.Status)
	}
	armed(before)
	cr, err := a.svc.Credentials(rs.ctx, a.id(t, bot), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var ggs []*gateway.Grant
	for _, r := range rs.r {
		gg, err := r.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey)
		if err != nil {
			t.Fatalf("%s: %v", r.name, err)
		}
		ggs = append(ggs, gg)
	}
	fake.Set(g.ExpiresAt)
	for i, gg := range ggs {
		if !isClosed(gg.Done()) {
			t.Errorf("%s: grant still open at its expiry", rs.r[i].name)
		}
	}
	if st := rs.stored(g.ID); st.Status != model.Expired || !st.EndedAt.Equal(g.ExpiresAt) {
		t.Errorf("stored %s ended %v, want expired at %v", st.Status, st.EndedAt, g.ExpiresAt)
	}
	if n := count(rs.entryTypes(g.ID), "grant.expired"); n != 1 {
		t.Errorf("grant.expired logged %d times: %v", n, rs.entryTypes(g.ID))
	}

	before = fake.Pending()
	p, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil || p.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, p.Status)
	}
	armed(before)
	// The fake is the replicas' own clock; the record's times are the
	// database's (dbclock.go), to which the replicas' measurements brought
	// them back while the clock moved ten minutes above. The deadline is
	// the pending timeout away by the replicas' time.
	fake.Advance(10 * time.Minute)
	if st := rs.stored(p.ID); st.Status != model.Cancelled || !st.EndedAt.Equal(p.DecideBy) {
		t.Errorf("stored %s ended %v, want cancelled at %v", st.Status, st.EndedAt, p.DecideBy)
	}
	if n := count(rs.entryTypes(p.ID), "grant.cancelled"); n != 1 {
		t.Errorf("grant.cancelled logged %d times: %v", n, rs.entryTypes(p.ID))
	}
}

// TestReplicasIdentityChanges: an agent added on A authenticates on C, and
// once disabled on B it neither authenticates on C nor may request there,
// and its grants are cut on C.
func TestReplicasIdentityChanges(t *testing.T) {
	rs := newReplicaSet(t, 3, nil)
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	lead := a.id(t, alice)
	lead.Groups = append(lead.Groups, "sre-team") // a person adds agents only into their own groups
	agent, key, err := a.svc.AddAgent(rs.ctx, lead, "late-bot", "sre-team", []string{"sre-team"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C to know the agent added on A", func() bool {
		_, ok := c.dir.Authenticate(key)
		return ok
	})
	g, err := c.svc.Request(rs.ctx, c.id(t, agent.Name), autoReq("10m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("request on C by the agent added on A: %v (%s)", err, g.Status)
	}
	cr, err := c.svc.Credentials(rs.ctx, c.id(t, agent.Name), g.ID)
	if err != nil {
		t.Fatal(err)
	}
	gg := waitLookup(t, c, cr)
	if _, err := b.svc.DisableAgent(rs.ctx, b.id(t, alice), agent.Name, "compromised"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C to refuse the agent disabled on B", func() bool {
		_, ok := c.dir.Authenticate(key)
		return !ok
	})
	waitClosed(t, gg.Done(), time.Second, "C's grant of the disabled agent")
	if _, err := c.svc.Request(rs.ctx, c.id(t, agent.Name), autoReq("10m")); err == nil {
		t.Fatal("C granted a request of an agent disabled on B")
	}
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	// Generous: the condition is usually met in milliseconds, but CI's two
	// cores run other packages' tests under -race beside this one.
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 30 s for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// killListener terminates r's listening connection and keeps r from
// reconnecting until release is called (at the latest when the test
// ends): to the others, r is meanwhile a replica that died (its lock in
// the store is gone), though its memory lives on.
func (rs *replicaSet) killListener(r *replica) (release func()) {
	t := rs.t
	t.Helper()
	down, resume := make(chan struct{}), make(chan struct{})
	var once sync.Once
	hold := func() {
		once.Do(func() {
			close(down)
			<-resume
		})
	}
	r.notifier.onLost.Store(&hold)
	var released sync.Once
	release = func() { released.Do(func() { close(resume) }) }
	t.Cleanup(release) // before the set's own clean-up
	conn, err := pgx.Connect(rs.ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(rs.ctx)
	var killed int
	if err := conn.QueryRow(rs.ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE application_name = 'airlock-listen ' || $1 AND datname = current_database()`, r.name).Scan(&killed); err != nil || killed != 1 {
		t.Fatalf("terminating %s's listener: killed %d, %v", r.name, killed, err)
	}
	select {
	case <-down:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not notice its listener was killed", r.name)
	}
	return release
}

// TestReplicasDeadReplicaSessions: a session served by C, whose replica
// then stops running (and whose grant is revoked after that), is ended by
// the others at its last recorded event, once, while a session of a live
// replica is left alone.
//
// With a sweep interval of 1 ms every sweep takes longer than the interval,
// as sweeps do under load: a sweep must not be cut short by it.
func TestReplicasDeadReplicaSessions(t *testing.T) {
	for _, sweep := range []time.Duration{20 * time.Millisecond, time.Millisecond} {
		t.Run(sweep.String(), func(t *testing.T) { testDeadReplicaSessions(t, sweep) })
	}
}

func testDeadReplicaSessions(t *testing.T, sweep time.Duration) {
	rs := newReplicaSet(t, 3, nil, func(o *grants.Options) { o.SessionSweep, o.ReplicaGrace = sweep, 300*time.Millisecond })
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	g, cr := rs.approved(a, b)
	onC := waitLookup(t, c, cr)
	onB := waitLookup(t, b, cr)
	sesC, err := c.svc.Authority().StartSession(rs.ctx, onC, "127.0.0.1:1 dying")
	if err != nil {
		t.Fatal(err)
	}
	sesB, err := b.svc.Authority().StartSession(rs.ctx, onB, "127.0.0.1:2 living")
	if err != nil {
		t.Fatal(err)
	}
	for _, ses := range []*gateway.Session{sesC, sesB} {
		if err := ses.Request(rs.ctx, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Allowed: true, BytesOut: 7}); err != nil {
			t.Fatal(err)
		}
	}
	// Several sweeps with C alive end nothing.
	time.Sleep(100 * time.Millisecond)
	if n := count(rs.sessionEntryTypes(sesC.ID), "session.ended"); n != 0 {
		t.Fatalf("a live replica's session was ended %d times", n)
	}
	killed := time.Now()
	revive := rs.killListener(c)
	// The grant ends after C died: nobody alive served C's session, so the
	// sweep must still end it.
	if _, err := a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "after C died"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "C's session to be ended by A or B", func() bool {
		s, err := a.st.Session(rs.ctx, sesC.ID)
		return err == nil && !s.EndedAt.IsZero()
	})
	if d := time.Since(killed); d < 300*time.Millisecond {
		t.Errorf("C's session was ended %v after C went, within the 300 ms grace", d)
	}
	time.Sleep(100 * time.Millisecond) // more sweeps: the end is not written twice
	types := rs.sessionEntryTypes(sesC.ID)
	if n := count(types, "session.ended"); n != 1 {
		t.Fatalf("C's session ended %d times: %v", n, types)
	}
	es, err := a.st.LogEntries(rs.ctx, store.LogFilter{SessionID: sesC.ID})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := a.st.Session(rs.ctx, sesC.ID)
	if last := es[len(es)-2]; !rec.EndedAt.Equal(last.Time) || rec.Calls != 1 || rec.BytesOut != 7 {
		t.Errorf("recovered session %+v; want it ended at its last call (%v) with 1 call, 7 bytes", rec, last.Time)
	}
	if d := entryData(t, es[len(es)-1]); d["recovered"] != true || !strings.Contains(fmt.Sprint(d["why"]), "replica r2") {
		t.Errorf("session.ended data %v", d)
	}
	if n := count(rs.sessionEntryTypes(sesB.ID), "session.ended"); n != 0 {
		t.Errorf("B's live session was ended")
	}
	// C was not dead after all (its listener was down for two sweeps):
	// when its gateway ends the session, the end is not written twice.
	revive()
	if err := sesC.End(rs.ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(rs.sessionEntryTypes(sesC.ID), "session.ended"); n != 1 {
		t.Errorf("C's own end after the recovery wrote a second end (%d ends)", n)
	}
	// Another reaper asking again changes nothing.
	if err := b.svc.RecoverSession(rs.ctx, sesC.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(rs.sessionEntryTypes(sesC.ID), "session.ended"); n != 1 {
		t.Errorf("RecoverSession of an ended session wrote it again (%d ends)", n)
	}
	// The rows agree with the log, as the review derives it.
	spage, err := a.svc.GrantSessions(rs.ctx, a.id(t, alice), g.ID, grants.SessionsQuery{})
	ss := spage.Sessions
	if err != nil || len(ss) != 2 {
		t.Fatalf("sessions of %s: %d, %v", g.ID, len(ss), err)
	}
	for _, s := range ss {
		if len(s.LogMismatch) > 0 {
			t.Errorf("session %s differs from its log: %v", s.ID, s.LogMismatch)
		}
	}
}

// servedSession starts a session on r under the grant of cr, from client,
// and records one call (7 bytes out) in it.
func (rs *replicaSet) servedSession(r *replica, cr grants.Credentials, client string) *gateway.Session {
	t := rs.t
	t.Helper()
	ses, err := r.svc.Authority().StartSession(rs.ctx, waitLookup(t, r, cr), client)
	if err != nil {
		t.Fatal(err)
	}
	if err := ses.Request(rs.ctx, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/x", Allowed: true, BytesOut: 7}); err != nil {
		t.Fatal(err)
	}
	return ses
}

func (rs *replicaSet) sessionEntryTypes(id string) []string {
	rs.t.Helper()
	es, err := rs.r[0].st.LogEntries(rs.ctx, store.LogFilter{SessionID: id})
	if err != nil {
		rs.t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Type)
	}
	return out
}

// BenchmarkReplicaLookup is the gateway's credential lookup on a replica of
// a shared store: a grant in memory (brought by its notice), a repeated
// unknown credential (answered by the negative cache), and a flood of
// distinct unknown credentials (a store read each up to the miss rate's
// burst and rate, refused unread beyond it). cpu-ns/op is this process's
// CPU (user+system) per lookup; PostgreSQL's is not included.
func BenchmarkReplicaLookup(b *testing.B) {
	rs := newReplicaSet(b, 2, nil)
	a, c := rs.r[0], rs.r[1]
	_, cr := rs.approved(a, a)
	waitLookup(b, c, cr)
	cpu := func(b *testing.B, f func(i int)) {
		start := cpuTime()
		i := 0
		for b.Loop() {
			f(i)
			i++
		}
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
	b.Run("hit", func(b *testing.B) {
		cpu(b, func(int) {
			if _, err := c.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("unknown-cached", func(b *testing.B) {
		cpu(b, func(int) {
			if _, err := c.svc.Authority().Lookup("AKALAAAAAAAAAAAAAAAB"); err == nil {
				b.Fatal("accepted")
			}
		})
	})
	b.Run("unknown-distinct", func(b *testing.B) {
		run := time.Now().UnixNano()
		cpu(b, func(i int) {
			id := fmt.Sprintf("AKAL%016d", (run+int64(i))%1e16)
			id = strings.Map(func(r rune) rune { return 'A' + (r - '0') }, id[4:])
			if _, err := c.svc.Authority().Lookup("AKAL" + id); err == nil {
				b.Fatal("accepted")
			}
		})
	})
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkReplicaReconcile measures how long a replica with 500 open
// grants stays unready after its listening connection is killed: the
// backoff (100 ms), the reconnection and the re-read of every grant.
func BenchmarkReplicaReconcile(b *testing.B) {
	rs := newReplicaSet(b, 2, nil)
	a, c := rs.r[0], rs.r[1]
	const open = 500
	for range open {
		if _, err := a.svc.Request(rs.ctx, a.id(b, bot), autoReq("10m")); err != nil {
			b.Fatal(err)
		}
	}
	conn, err := pgx.Connect(rs.ctx, rs.dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(rs.ctx)
	var total time.Duration
	for b.Loop() {
		waitFor(b, "C ready", func() bool { return c.svc.Ready() == nil })
		start := time.Now()
		if _, err := conn.Exec(rs.ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'airlock-listen r1' AND datname = current_database()`); err != nil {
			b.Fatal(err)
		}
		waitFor(b, "C unready", func() bool { return c.svc.Ready() != nil })
		waitFor(b, "C ready again", func() bool { return c.svc.Ready() == nil })
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms-unready/op")
}
