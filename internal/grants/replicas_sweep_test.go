package grants_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
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
