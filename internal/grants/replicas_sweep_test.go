package grants_test

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasDeadReplicaSessionsLongAfter: C serves a session and dies.
// Nobody sweeps for a long while (every replica was down: here the
// replicas' clock jumps an hour, as a restart after an hour's outage
// finds it), and the grant ends meanwhile. However long ago its grant
// ended, the session is ended in the record, at its last recorded event,
// once, saying why.
func TestReplicasDeadReplicaSessionsLongAfter(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	rs := newReplicaSet(t, 3, fake, func(o *grants.Options) { o.SessionSweep, o.ReplicaGrace = 20*time.Millisecond, 100*time.Millisecond })
	a, b, c := rs.r[0], rs.r[1], rs.r[2]
	g, cr := rs.approved(a, b)
	ses := rs.servedSession(c, cr, "127.0.0.1:1 dying")
	rs.killListener(c) // C is gone: its lock in the store with it

	// An hour later the grant has expired (each replica's timer ends it at
	// its expiry; the record says so once).
	fake.Advance(time.Hour)
	waitFor(t, "the grant to be recorded expired", func() bool { return rs.stored(g.ID).Status == model.Expired })
	if end := rs.stored(g.ID).EndedAt; fake.Now().Sub(end) < 30*time.Minute {
		t.Fatalf("the grant ended at %v, only %v before the replicas' now", end, fake.Now().Sub(end))
	}
	waitFor(t, "C's session, of a grant that ended long ago, to be ended by A or B", func() bool {
		s, err := a.st.Session(rs.ctx, ses.ID)
		return err == nil && !s.EndedAt.IsZero()
	})
	time.Sleep(100 * time.Millisecond) // more sweeps: the end is not written twice
	if n := count(rs.sessionEntryTypes(ses.ID), "session.ended"); n != 1 {
		t.Fatalf("C's session ended %d times", n)
	}
	es, err := a.st.LogEntries(rs.ctx, store.LogFilter{SessionID: ses.ID})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := a.st.Session(rs.ctx, ses.ID)
	if last := es[len(es)-2]; !rec.EndedAt.Equal(last.Time) || rec.Calls != 1 || rec.BytesOut != 7 {
		t.Errorf("recovered session %+v; want it ended at its last call (%v) with 1 call, 7 bytes", rec, last.Time)
	}
	if d := entryData(t, es[len(es)-1]); d["recovered"] != true || !strings.Contains(fmt.Sprint(d["why"]), "replica r2") {
		t.Errorf("session.ended data %v", d)
	}
}

// TestReplicasFirstSweepSparesThisRunsSessions: a replica's first sweep
// ends its own earlier run's sessions, and must leave this run's alone
// however late it runs. It told them apart by time: a session that started
// before Start began was an earlier run's. But a replica's time is its
// clock plus its offset from the database's, which moves at each
// measurement (by up to half its round trip) and with a step of the clock
// between two; a session started just after Start could read as before it.
// Here the clock steps a minute back after the grant's approval, and the
// first sweep is held until the session has started: it ended the live
// session, and the call recorded next followed session.ended in the log
// (what a CI run at load 30 showed, from the offset alone: "session.call
// after session … ended"). Now a run's own sessions are told by their
// place in the log.
func TestReplicasFirstSweepSparesThisRunsSessions(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	gate := make(chan struct{})
	var sweeps atomic.Int64
	hold := func() {
		if sweeps.Add(1) == 1 {
			<-gate // the first sweep waits for the session below
		}
	}
	rs := newReplicaSet(t, 1, fake, func(o *grants.Options) {
		o.SessionSweep, o.ReplicaGrace = 20*time.Millisecond, 100*time.Millisecond
		o.Store.(*countingStore).beforeOpenSessions.Store(&hold)
	})
	a := rs.r[0]
	_, cr := rs.approved(a, a)
	fake.Set(fake.Now().Add(-time.Minute)) // a step back between two measurements
	ses := rs.servedSession(a, cr, "127.0.0.1:1 live")
	close(gate)
	waitFor(t, "the first sweep to finish (the second to begin)", func() bool { return sweeps.Load() >= 2 })

	if s, err := a.st.Session(rs.ctx, ses.ID); err != nil || !s.EndedAt.IsZero() {
		t.Fatalf("this run's live session after the first sweep: %+v, %v", s, err)
	}
	if err := ses.Request(rs.ctx, gateway.Call{Kind: "request", Action: "s3:GetObject", Resource: "arn:aws:s3:::logs/y", Allowed: true, BytesOut: 3}); err != nil {
		t.Fatal(err)
	}
	if err := ses.End(rs.ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(rs.sessionEntryTypes(ses.ID), " "), "session.started session.call session.call session.ended"; got != want {
		t.Fatalf("the session's entries: %q, want %q", got, want)
	}
}
