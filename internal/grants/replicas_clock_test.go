package grants_test

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/findings"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasApproveSlowClock: a request waits 50 ms for a decision (by
// the database's clock: its times are read in the transaction that records
// it). The replica's clock then steps an hour back, and before it measures
// its offset again it is asked to approve the request once the database's
// clock has passed the deadline: by its own time, the deadline is an hour
// away. The approval's transaction reads the database's clock, which
// every replica shares and by which the others would have cancelled the
// request: the approval is refused, and the request ends cancelled at its
// deadline; no approval is recorded.
func TestReplicasApproveSlowClock(t *testing.T) {
	slow := clock.NewFake(time.Now().UTC())
	rs := newReplicaSet(t, 1, slow, func(o *grants.Options) { o.PendingTimeout = 50 * time.Millisecond })
	a := rs.r[0]
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil || g.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, g.Status)
	}
	slow.Set(slow.Now().Add(-time.Hour)) // runs no timer: neither the deadline's nor the next measurement's
	// The database's clock cannot be moved: wait (50 ms) for it to pass
	// the deadline.
	waitFor(t, "the database's clock to pass the deadline", func() bool {
		now, err := a.st.ServerNow(rs.ctx)
		return err == nil && now.After(g.DecideBy)
	})
	if !slow.Now().Before(g.DecideBy) {
		t.Fatalf("the replica's clock %v, the deadline %v", slow.Now(), g.DecideBy)
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

// within says whether t is within d of the database's clock (here the
// machine's: PostgreSQL runs on it).
func within(t time.Time, d time.Duration) bool {
	off := time.Since(t)
	return off < d && off > -d
}

// TestReplicasSkewedClocks: two replicas on one store, F's clock five
// minutes ahead of the database's and S's five minutes behind, a request
// waiting ten minutes for a decision. Whichever replica writes them, the
// record's times are the database's, and each replica serves a 20-minute
// grant for 20 minutes of its own clock's time, no more and no less, by
// its own timer (the other is deaf, as if it had died): a grant F
// approved is not served by S for ten minutes more, a grant S approved is
// not cut off by F ten minutes early, and F may approve what S was asked
// for (it found it overdue). A session starts, in the record, after its
// grant did.
func TestReplicasSkewedClocks(t *testing.T) {
	now := time.Now().UTC()
	fast := clock.NewFake(now.Add(5 * time.Minute))
	slow := clock.NewFake(now.Add(-5 * time.Minute))
	rs := newReplicaSetClocks(t, []clock.Clock{fast, slow})
	f, s := rs.r[0], rs.r[1]
	const margin = time.Second

	// serve: the grant approved on by, as served by on (on deaf), from 20
	// minutes less the margin to 20 minutes of on's clock.
	serve := func(by, on *replica, onClock *clock.Fake) {
		t.Helper()
		by.notifier.deaf.Store(false)
		on.notifier.deaf.Store(true)
		// The fakes stand still while the test runs, so a replica reads the
		// database's time of its last measurement: by measures again
		// before it approves, on after (as a moving clock would have
		// moved meanwhile).
		byClock := fast
		if onClock == fast {
			byClock = slow
		}
		byClock.Advance(grants.DefaultClockCheck)
		g, cr := rs.approved(by, by)
		onClock.Advance(grants.DefaultClockCheck)
		st := rs.stored(g.ID)
		if !within(st.RequestedAt, time.Minute) || !within(st.StartedAt, time.Minute) || !st.ExpiresAt.Equal(st.StartedAt.Add(20*time.Minute)) {
			t.Errorf("approved on %s: requested %v, started %v, expires %v; the database's clock reads %v",
				by.name, st.RequestedAt, st.StartedAt, st.ExpiresAt, time.Now().UTC())
		}
		gg := waitLookup(t, on, cr)
		// The gateways' clock (Service.Clock) is on the database's time,
		// whatever on's own clock says.
		if gnow := on.svc.Clock().Now(); !within(gnow, time.Minute) || !gg.Live(gnow) {
			t.Errorf("%s's gateway clock reads %v (live %v); the database's clock reads %v", on.name, gnow, gg.Live(gnow), time.Now().UTC())
		}
		ses, err := on.svc.Authority().StartSession(rs.ctx, gg, "127.0.0.1:1 agent")
		if err != nil {
			t.Fatal(err)
		}
		if rec, err := on.st.Session(rs.ctx, ses.ID); err != nil {
			t.Fatal(err)
		} else if rec.StartedAt.Before(st.StartedAt.Add(-time.Second)) || !within(rec.StartedAt, time.Minute) {
			t.Errorf("a session on %s started at %v, its grant at %v", on.name, rec.StartedAt, st.StartedAt)
		}
		if err := ses.End(rs.ctx); err != nil {
			t.Fatal(err)
		}
		onClock.Advance(20*time.Minute - margin)
		if _, err := on.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey); err != nil {
			t.Errorf("%s refuses the grant approved on %s %v after, before its 20 minutes are up: %v", on.name, by.name, 20*time.Minute-margin, err)
		}
		onClock.Advance(margin)
		if gg.Live(on.svc.Clock().Now()) {
			t.Errorf("%s's gateway clock still finds the grant live 20 minutes after", on.name)
		}
		if _, err := on.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey); err == nil || !isClosed(gg.Done()) {
			t.Errorf("%s still serves the grant approved on %s 20 minutes after (its record expires %v)", on.name, by.name, st.ExpiresAt)
		}
		if st := rs.stored(g.ID); st.Status != model.Expired || !st.EndedAt.Equal(st.ExpiresAt) {
			t.Errorf("stored %s ended %v, want expired at %v", st.Status, st.EndedAt, st.ExpiresAt)
		}
		if n := count(rs.entryTypes(g.ID), "grant.expired"); n != 1 {
			t.Errorf("grant.expired logged %d times", n)
		}
	}
	serve(f, s, slow)
	serve(s, f, fast)

	f.notifier.deaf.Store(false)
	s.notifier.deaf.Store(false)
	g, err := s.svc.Request(rs.ctx, s.id(t, bot), humanReq("20m"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := f.svc.Approve(rs.ctx, f.id(t, alice), g.ID, "ok"); err != nil || out.Status != model.Active {
		t.Errorf("approving on the fast replica a request made on the slow one: %v (%s); its deadline is %v, the database's clock reads %v",
			err, out.Status, g.DecideBy, time.Now().UTC())
	}
}

// TestReplicasRestartAfterFastClock: a replica whose clock is ten minutes
// fast serves a session and crashes; it is started again under the same
// name with its clock put right. Its first sweep ends its earlier run's
// session, at its last recorded event, as for any restart: that run's
// session started, in the record, before this run did. (When the record
// held the replica's own clock, the session started ten minutes after
// this run, by the record, so it passed for this run's and was never
// ended: the other replicas see this name's lock held.)
func TestReplicasRestartAfterFastClock(t *testing.T) {
	fast := clock.NewFake(time.Now().UTC().Add(10 * time.Minute))
	rs := newReplicaSetClocks(t, []clock.Clock{nil, fast}, func(o *grants.Options) {
		o.SessionSweep, o.ReplicaGrace = 20*time.Millisecond, 100*time.Millisecond
	})
	a, f := rs.r[0], rs.r[1]
	_, cr := rs.approved(a, a)
	ses := rs.servedSession(f, cr, "127.0.0.1:1 crashing")
	rs.restart(1, clock.Real)
	waitFor(t, "the restarted replica to end its earlier run's session", func() bool {
		s, err := a.st.Session(rs.ctx, ses.ID)
		return err == nil && !s.EndedAt.IsZero()
	})
	es, err := a.st.LogEntries(rs.ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := a.st.Session(rs.ctx, ses.ID)
	if last := es[len(es)-2]; !rec.EndedAt.Equal(last.Time) || !within(rec.EndedAt, time.Minute) || rec.Calls != 1 {
		t.Errorf("recovered session %+v; want it ended at its last call (%v), by the database's clock (%v)", rec, last.Time, time.Now().UTC())
	}
	if n := count(rs.sessionEntryTypes(ses.ID), "session.ended"); n != 1 {
		t.Errorf("session ended %d times", n)
	}
}

// TestReplicasDecisionOnDatabaseClock: a replica's clock steps an hour
// back between two of its measurements, after a request was made. An
// approval it records meanwhile carries the database's time, read in the
// approval's transaction: the grant starts now, not an hour ago (when it
// would be recorded as expired forty minutes before it was approved).
func TestReplicasDecisionOnDatabaseClock(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC())
	rs := newReplicaSet(t, 1, clk)
	a := rs.r[0]
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(-time.Hour)) // runs no timer: the next measurement is still due
	out, err := a.svc.Approve(rs.ctx, a.id(t, alice), g.ID, "ok")
	if err != nil || out.Status != model.Active {
		t.Fatalf("approve: %v (%s)", err, out.Status)
	}
	st := rs.stored(g.ID)
	if !within(st.StartedAt, time.Minute) || !st.ExpiresAt.Equal(st.StartedAt.Add(20*time.Minute)) || !st.DecidedAt.Equal(st.StartedAt) {
		t.Errorf("approved: decided %v, started %v, expires %v; the database's clock reads %v", st.DecidedAt, st.StartedAt, st.ExpiresAt, time.Now().UTC())
	}
	if es, err := a.st.LogEntries(rs.ctx, store.LogFilter{GrantID: g.ID, Type: "grant.activated"}); err != nil || len(es) != 1 || !es[0].Time.Equal(st.StartedAt) {
		t.Errorf("grant.activated entries %v (%v); want one at %v", es, err, st.StartedAt)
	}
}

// steppedClock is a clock whose reading can step while its timers run on,
// as a real clock's do (they count elapsed time): Now is the Fake's
// reading plus step, AfterFunc the Fake's.
type steppedClock struct {
	*clock.Fake
	step atomic.Int64
}

func (c *steppedClock) Now() time.Time { return c.Fake.Now().Add(time.Duration(c.step.Load())) }

// TestReplicasClockStepBackRearms: a replica's clock steps an hour back,
// and before its next measurement against the database's clock it
// approves a 20-minute grant. The record's times are the database's (read
// in the approval's transaction), but the expiry timer, armed for the
// time left by the replica's time, would run an hour and twenty minutes
// later: the grant's open connections would outlive it by the step. The
// next measurement finds the step and arms the timers again, and the
// grant is cut off 20 minutes after it was approved.
func TestReplicasClockStepBackRearms(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	clk := &steppedClock{Fake: fake}
	rs := newReplicaSetClocks(t, []clock.Clock{clk})
	a := rs.r[0]
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil {
		t.Fatal(err)
	}
	clk.step.Store(int64(-time.Hour))
	if _, err := a.svc.Approve(rs.ctx, a.id(t, alice), g.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	gg := a.svc.Authority().Grant(g.ID)
	if gg == nil {
		t.Fatal("the approved grant is not in memory")
	}
	fake.Advance(grants.DefaultClockCheck) // the next measurement
	fake.Advance(20 * time.Minute)
	if !isClosed(gg.Done()) {
		t.Errorf("the grant is still open 20 minutes and %v after it was approved", grants.DefaultClockCheck)
	}
	if st := rs.stored(g.ID); st.Status != model.Expired || !st.EndedAt.Equal(st.ExpiresAt) {
		t.Errorf("stored %s ended %v, want expired at %v", st.Status, st.EndedAt, st.ExpiresAt)
	}
}

// TestReplicasRequestOnDatabaseClock: a replica's clock steps an hour
// ahead, and before its next measurement it records a request that policy
// approves at once, and one that waits for a person. Their times are the
// database's, read in the transaction that records them: the grant does
// not start an hour from now (when every replica would serve it an hour
// past its duration by the record), nor the request's deadline wait an
// hour longer; and the replica cuts the grant off after its ten minutes,
// not at once.
func TestReplicasRequestOnDatabaseClock(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	clk := &steppedClock{Fake: fake}
	rs := newReplicaSetClocks(t, []clock.Clock{clk})
	a := rs.r[0]
	clk.step.Store(int64(time.Hour))
	g, err := a.svc.Request(rs.ctx, a.id(t, bot), autoReq("10m"))
	if err != nil || g.Status != model.Active {
		t.Fatalf("auto request: %v (%s)", err, g.Status)
	}
	st := rs.stored(g.ID)
	if !within(st.RequestedAt, time.Minute) || !st.StartedAt.Equal(st.RequestedAt) || !st.ExpiresAt.Equal(st.StartedAt.Add(10*time.Minute)) {
		t.Errorf("auto-approved: requested %v, started %v, expires %v; the database's clock reads %v", st.RequestedAt, st.StartedAt, st.ExpiresAt, time.Now().UTC())
	}
	// The reading in the transaction measured the offset too: the grant
	// is served for its ten minutes by this replica's timer, not cut off
	// at once (its expiry was an hour behind the replica's time).
	gg := a.svc.Authority().Grant(g.ID)
	if gg == nil {
		t.Fatal("the grant is not in memory")
	}
	fake.Advance(10*time.Minute - time.Second)
	if isClosed(gg.Done()) {
		t.Errorf("the grant was cut off before its ten minutes")
	}
	fake.Advance(time.Second)
	if !isClosed(gg.Done()) {
		t.Errorf("the grant is still open after its ten minutes")
	}
	p, err := a.svc.Request(rs.ctx, a.id(t, bot), humanReq("20m"))
	if err != nil || p.Status != model.Pending {
		t.Fatalf("request: %v (%s)", err, p.Status)
	}
	if st := rs.stored(p.ID); !within(st.RequestedAt, time.Minute) || !st.DecideBy.Equal(st.RequestedAt.Add(10*time.Minute)) {
		t.Errorf("pending: requested %v, decide by %v; the database's clock reads %v", st.RequestedAt, st.DecideBy, time.Now().UTC())
	}
}

// TestReplicasSeedFindingsOnOwnClock: at start a replica notes the
// instances that requested within the findings window, from the record,
// whose times are the database's; its detector runs on the replica's own
// clock. A replica 20 minutes fast took a request made a moment ago as 20
// minutes old, outside a 10-minute window, and forgot it: a second
// instance right after the restart raised no shared-identity finding.
func TestReplicasSeedFindingsOnOwnClock(t *testing.T) {
	fast := clock.NewFake(time.Now().UTC().Add(20 * time.Minute))
	var det *findings.Detector
	rs := newReplicaSetClocks(t, []clock.Clock{fast}, func(o *grants.Options) {
		det = findings.New(fast, 10*time.Minute) // a new one for every start
		o.Findings = det
	})
	r := rs.r[0]
	caller := r.id(t, bot)
	caller.Instance = &model.Instance{IP: "10.9.8.7"}
	// As the API does for every call of an agent's, then its request.
	if err := r.svc.ObserveCall(rs.ctx, caller); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Request(rs.ctx, caller, autoReq("10m")); err != nil {
		t.Fatal(err)
	}
	want := findings.Key(*caller.Instance)
	if active := det.Active(bot); !slices.Contains(active, want) {
		t.Fatalf("before the restart: active %q, want %q", active, want)
	}
	rs.restart(0, fast)
	if active := det.Active(bot); !slices.Contains(active, want) {
		t.Fatalf("after the restart the request's instance is forgotten: active %q, want %q", active, want)
	}
}
