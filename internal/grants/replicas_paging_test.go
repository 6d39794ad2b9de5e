package grants_test

import (
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/model"
)

// TestReplicasSessionPagesAcrossClocks: a grant's sessions are paged by a
// cursor, and the sessions' times are each replica's (its clock plus its
// measured offset from the database's), taken before the start is
// recorded. Replica B's clock steps 10 s back after its last measurement
// (any replica's reading may lag another's by its error, and a start may
// be committed after a later one): a session B starts after a reader on A
// took a page's cursor carries a time before the cursor's, and a cursor on
// that time skipped it for good. Paged by the order the starts were
// stored in, the next page (read on B) holds it. The grants' own pages
// need no such care: a request's time is the database's clock read under
// the log's writers' lock, in the transaction that records it.
func TestReplicasSessionPagesAcrossClocks(t *testing.T) {
	fake := clock.NewFake(time.Now().UTC())
	clkB := &steppedClock{Fake: fake}
	rs := newReplicaSetClocks(t, []clock.Clock{fake, clkB}, func(o *grants.Options) { o.ClockCheck = time.Hour })
	a, b := rs.r[0], rs.r[1]
	g, cr := rs.approved(a, a)
	var started []string
	for range 3 {
		fake.Advance(time.Second)
		started = append(started, rs.servedSession(a, cr, "127.0.0.1:1").ID)
	}
	first, err := a.svc.GrantSessions(rs.ctx, a.id(t, alice), g.ID, grants.SessionsQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Sessions) != 2 || first.Next == "" {
		t.Fatalf("first page: %d sessions, next %q; want 2 and a cursor", len(first.Sessions), first.Next)
	}
	clkB.step.Store(int64(-10 * time.Second))
	fake.Advance(time.Second)
	late := rs.servedSession(b, cr, "127.0.0.1:2").ID
	started = append(started, late)

	listedOnce(t, first, started, late, func(after string) (grants.SessionsPage, error) {
		return b.svc.GrantSessions(rs.ctx, b.id(t, alice), g.ID, grants.SessionsQuery{After: after, Limit: 2})
	})
}

// listedOnce reads the pages after first (read) and fails t unless every
// session of started is listed once over first and them.
func listedOnce(t *testing.T, first grants.SessionsPage, started []string, late string, read func(after string) (grants.SessionsPage, error)) {
	t.Helper()
	seen := map[string]int{}
	for _, s := range first.Sessions {
		seen[s.ID]++
	}
	next := first.Next
	for range 10 {
		page, err := read(next)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range page.Sessions {
			seen[s.ID]++
		}
		if next = page.Next; next == "" {
			break
		}
	}
	for _, id := range started {
		if seen[id] != 1 {
			t.Errorf("session %s listed %d times over the pages (late: %v)", id, seen[id], id == late)
		}
	}
}

// TestSessionPagesClockStepBack: a single server on SQLite, whose clock
// steps 2.5 s back (NTP) after a reader took the cursor of a grant's
// first page of sessions: the session started then carries a time before
// the cursor's, and a cursor on start times skipped it for good. Paged by
// the order the starts were stored in, the next page holds it.
func TestSessionPagesClockStepBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOptions{Manual: true, Stepped: true})
	g := h.request(bot, autoReq("10m"), model.Active)
	var started []string
	for range 3 {
		h.fake.Advance(time.Second)
		started = append(started, h.startSession(g, "127.0.0.1:1").ID)
	}
	first, err := h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Sessions) != 2 || first.Next == "" {
		t.Fatalf("first page: %d sessions, next %q; want 2 and a cursor", len(first.Sessions), first.Next)
	}
	h.stepped.step.Store(int64(-2500 * time.Millisecond))
	h.fake.Advance(time.Second)
	late := h.startSession(g, "127.0.0.1:2").ID
	started = append(started, late)

	listedOnce(t, first, started, late, func(after string) (grants.SessionsPage, error) {
		return h.Svc.GrantSessions(h.ctx, h.id(alice), g.ID, grants.SessionsQuery{After: after, Limit: 2})
	})
	h.checkReview(t)
}
