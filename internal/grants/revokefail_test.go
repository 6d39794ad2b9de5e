package grants_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/apierr"
	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
	"github.com/airlock-dev/airlock/internal/store"
)

// TestReplicasFailedRevokeStaysCutOff: a revoke (or the holder's end)
// whose record cannot be written (replica A's log store refuses writes;
// reads still work, as on a database whose disk is full) cuts the grant
// off on A. The credential must not come back there through a cache miss
// (which reads the still-active row) or a re-read of every grant, the
// caller is told the revoke is not recorded yet, and once the log takes
// writes again the revoke is recorded, with its own time, person and
// reason, and every replica refuses the credential.
func TestReplicasFailedRevokeStaysCutOff(t *testing.T) {
	for _, op := range []string{"revoke", "end"} {
		t.Run(op, func(t *testing.T) {
			var fail atomic.Bool
			fake := clock.NewFake(time.Now())
			rs := newReplicaSet(t, 2, fake)
			rs.logStore = func(st store.Store) store.Store { return failingStore{st, &fail} }
			a := rs.restart(0, fake)
			b := rs.r[1]
			g, cr := rs.approved(a, b)
			waitLookup(t, a, cr)
			gb := waitLookup(t, b, cr)
			fail.Store(true)
			var err error
			if op == "revoke" {
				_, err = a.svc.Revoke(rs.ctx, a.id(t, carol), g.ID, "incident")
			} else {
				_, err = a.svc.End(rs.ctx, a.id(t, bot), g.ID, "done")
			}
			var ae *apierr.Error
			if !errors.As(err, &ae) || ae.Code != apierr.CodeUnavailable || !strings.Contains(ae.Message, "cut off") {
				t.Fatalf("%s while the log refused writes: %v, want unavailable, saying the grant is cut off", op, err)
			}
			for range 3 {
				if _, err := a.svc.Authority().Authenticate(cr.AccessKeyID, cr.SecretAccessKey); !errors.Is(err, gateway.ErrNoGrant) {
					t.Fatalf("the credential of a grant whose %s failed works again on the same replica: %v", op, err)
				}
			}
			if st := rs.stored(g.ID); st.Status != model.Active {
				t.Fatalf("recorded as %s while the log refused writes", st.Status)
			}
			fail.Store(false)
			fake.Advance(time.Second) // the retry
			deadline := time.Now().Add(10 * time.Second)
			for rs.stored(g.ID).Status == model.Active {
				if time.Now().After(deadline) {
					t.Fatalf("the %s was not recorded after the log recovered", op)
				}
				time.Sleep(10 * time.Millisecond)
			}
			st := rs.stored(g.ID)
			want, by := model.Revoked, carol
			if op == "end" {
				want, by = model.Ended, bot
			}
			// The fake clock stood still from the approval to the
			// failed attempt, and moved a second for the retry: the
			// end's time is the attempt's, not the retry's.
			if st.Status != want || st.EndedBy != by || st.EndedAt.Sub(st.StartedAt) >= time.Second/2 {
				t.Fatalf("recorded %s by %s at %v (started %v), want %s by %s at the failed attempt's time", st.Status, st.EndedBy, st.EndedAt, st.StartedAt, want, by)
			}
			select {
			case <-gb.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("B still serves the grant after the revoke was recorded")
			}
		})
	}
}

// TestFailedRevokeRecordedWhenLogRecovers: on a single server, a revoke
// that could not be recorded leaves the grant cut off, and is recorded
// (not forgotten, to be undone by the next restart) once the log takes
// writes again.
func TestFailedRevokeRecordedWhenLogRecovers(t *testing.T) {
	t.Parallel()
	var fail atomic.Bool
	h := newHarness(t, harnessOptions{Manual: true, LogStore: func(st store.Store) store.Store { return failingStore{st, &fail} }})
	g := h.request(bot, autoReq("10m"), model.Active)
	c := h.creds(bot, g.ID)
	fail.Store(true)
	at := h.fake.Now()
	// Made through the API, with carol's key: the record written later
	// says so, as one written at once would.
	byKey := h.id(carol)
	byKey.SignIn = &model.SignIn{Method: model.SignInAPIKey, KeyID: "k_0123456789abcdef"}
	if _, err := h.Svc.Revoke(grants.WithChannel(h.ctx, "api", ""), byKey, g.ID, "incident"); err == nil {
		t.Fatal("revoke succeeded while the log refused writes")
	}
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err == nil {
		t.Fatal("credentials work after a revoke that could not be recorded")
	}
	fail.Store(false)
	h.fake.Advance(time.Second)
	rec, err := h.St.Grant(h.ctx, g.ID)
	if err != nil || rec.Status != model.Revoked || rec.EndedBy != carol || !rec.EndedAt.Equal(at) {
		t.Fatalf("after the log recovered: %s by %s at %v (%v), want revoked by %s at %v", rec.Status, rec.EndedBy, rec.EndedAt, err, carol, at)
	}
	if rec.EndedAuth == nil || *rec.EndedAuth != *byKey.SignIn {
		t.Errorf("after the log recovered: ended_auth %+v, want %+v", rec.EndedAuth, byKey.SignIn)
	}
	if es := h.entriesOfType("grant.revoked"); len(es) != 1 || entryData(t, es[0])["via"] != "api" {
		t.Errorf("the revoke recorded once the log recovered does not say via api: %d entries", len(es))
	}
	h.restart()
	if _, err := h.Svc.Authority().Authenticate(c.AccessKeyID, c.SecretAccessKey); err == nil {
		t.Fatal("credentials work after a restart")
	}
}
