package grants_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/internal/clock"
	"github.com/airlock-dev/airlock/internal/gateway"
	"github.com/airlock-dev/airlock/internal/grants"
	"github.com/airlock-dev/airlock/internal/store"
)

var errStoreCut = errors.New("test: the store is cut off")

func (c *countingStore) slotsDown() error {
	if c.slotsCut.Load() {
		return errStoreCut
	}
	return nil
}

func (c *countingStore) TakeSlot(ctx context.Context, s store.Slot, max int, now time.Time) (bool, []store.Slot, error) {
	if err := c.slotsDown(); err != nil {
		return false, nil, err
	}
	if c.slotsHang.Load() {
		<-ctx.Done()
		return false, nil, ctx.Err()
	}
	return c.Store.TakeSlot(ctx, s, max, now)
}

func (c *countingStore) KeepSlot(ctx context.Context, id string) error {
	if err := c.slotsDown(); err != nil {
		return err
	}
	return c.Store.KeepSlot(ctx, id)
}

func (c *countingStore) ReleaseSlots(ctx context.Context, ids []string) error {
	if err := c.slotsDown(); err != nil {
		return err
	}
	return c.Store.ReleaseSlots(ctx, ids)
}

func (c *countingStore) RenewSlots(ctx context.Context, replica string, slots []store.Slot, until time.Time) ([]string, []string, error) {
	if err := c.slotsDown(); err != nil {
		return nil, nil, err
	}
	return c.Store.RenewSlots(ctx, replica, slots, until)
}

// TestReplicasSlotLeaseFailsClosed: a live replica that cannot renew its
// session slots (its store cut off) ends the sessions (and closes the kept
// connections) they stand for before their lease passes, when the other
// replicas count the slots out and admit sessions in their place: the
// grant never holds more than max_sessions_per_grant. When the store
// answers again, its clients may log in again. Two replicas on one fake
// clock (no waiting for the lease) and a real PostgreSQL store; the cut is
// replica 0's slot calls failing at once.
func TestReplicasSlotLeaseFailsClosed(t *testing.T) {
	fake := clock.NewFake(time.Now())
	// The offsets from the database's clock measured at start stay, so
	// that the replicas' time moves with the fake clock.
	rs := newReplicaSet(t, 2, fake, func(o *grants.Options) { o.ClockCheck = time.Hour })
	a, b := rs.r[0], rs.r[1]
	cutA := &a.st.slotsCut
	ctx := context.Background()
	g := gateway.NewGrant(gateway.Info{ID: "g_slotlease"})
	const max = 2

	cuts := make(chan string, 4)
	slotA, err := a.svc.SessionSlots().Take(ctx, g, max, func(why string) { cuts <- why })
	if err != nil || slotA == nil {
		t.Fatalf("a session's slot on A: %v, %v", slotA, err)
	}
	keptA, err := a.svc.SessionSlots().Take(ctx, g, max, func(why string) { cuts <- "kept connection's session: " + why })
	if err != nil || keptA == nil {
		t.Fatalf("a second slot on A: %v, %v", keptA, err)
	}
	takeB := func() gateway.Slot {
		t.Helper()
		sl, err := b.svc.SessionSlots().Take(ctx, g, max, func(string) {})
		if err != nil {
			t.Fatalf("a slot on B: %v", err)
		}
		return sl
	}
	if sl := takeB(); sl != nil {
		t.Fatal("B took a slot of a grant whose 2 A holds")
	}

	// A's store is cut off: its renewals fail. Its session goes on while
	// the lease holds, and B still counts it.
	cutA.Store(true)
	// One of A's sessions ends meanwhile, its upstream connection kept
	// (marked kept in A alone: the store does not answer).
	lost := make(chan struct{}, 1)
	keptA.Keep(func() { lost <- struct{}{} })
	fake.Advance(20 * time.Second) // two failed renewals
	select {
	case why := <-cuts:
		t.Fatalf("A's session cut off %v into a 30 s lease: %s", 20*time.Second, why)
	default:
	}
	if sl := takeB(); sl != nil {
		t.Fatal("B took a slot while A's leases hold")
	}

	// Before the lease passes (and B counts the slots out), A ends the
	// session and closes the kept connection.
	fake.Advance(grants.DefaultSlotLease - 20*time.Second - time.Second)
	select {
	case why := <-cuts:
		if !strings.Contains(why, "could not renew") || !strings.Contains(why, "max_sessions_per_grant") || strings.Contains(why, errStoreCut.Error()) {
			t.Errorf("the cut's reason %q does not say why (or names the store's error)", why)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("A's session was not cut off though its slot's lease is about to pass unrenewed: the grant may exceed its bound once B counts it out")
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("A's kept connection was not closed though its slot's lease is about to pass unrenewed")
	}
	select {
	case why := <-cuts:
		t.Errorf("a kept connection's session was cut off: %s", why)
	default:
	}
	slotA.Release() // the session's end: nothing left to give back
	fake.Advance(2 * time.Second)
	b1, b2 := takeB(), takeB()
	if b1 == nil || b2 == nil {
		t.Fatal("B's sessions were refused once A's leases had passed")
	}

	// The store answers again: A's clients may log in again once B's
	// sessions end.
	cutA.Store(false)
	fake.Advance(10 * time.Second) // A renews: it holds nothing
	if sl, err := a.svc.SessionSlots().Take(ctx, g, max, func(string) {}); err != nil || sl != nil {
		t.Fatalf("A took a slot of a grant whose 2 B holds: %v, %v", sl, err)
	}
	b1.Release()
	sl, err := a.svc.SessionSlots().Take(ctx, g, max, func(string) {})
	if err != nil || sl == nil {
		t.Fatalf("a login on A once its store is back: %v, %v", sl, err)
	}
	sl.Release()
	b2.Release()
}

// TestReplicasSlotTakeBounded: a login's take of a slot from a store that
// does not answer fails within the slots' store timeout (5 s), as their
// other calls do, and the login is refused (the gateway says the store is
// unreachable): the login's context has no deadline, and a take waited,
// and held the login, for as long as the store did not answer.
func TestReplicasSlotTakeBounded(t *testing.T) {
	rs := newReplicaSet(t, 1, nil)
	a := rs.r[0]
	a.st.slotsHang.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	began := time.Now()
	sl, err := a.svc.SessionSlots().Take(ctx, gateway.NewGrant(gateway.Info{ID: "g_hang"}), 2, func(string) {})
	if took := time.Since(began); sl != nil || err == nil || ctx.Err() != nil || took > 10*time.Second {
		t.Fatalf("a take from a store that does not answer: %v, %v after %v (the caller's own deadline: %v); want an error within 5 s", sl, err, took, ctx.Err())
	}
}

// TestReplicasSlotsRetakenAfterRestart: a restart of the database empties
// session_slots (UNLOGGED); the other replicas, counting an empty table,
// may fill a grant meanwhile. A's renewal that finds its sessions' slots
// gone takes them again under the grant's lock and bound, as a login
// does: the session of a grant B has filled is ended (fail closed, with a
// reason saying why), the grant keeps no more slots than the bound, and
// the session of a grant with room keeps its slot. The restart is a
// TRUNCATE of the table on a real PostgreSQL store; the replicas run on
// one fake clock.
func TestReplicasSlotsRetakenAfterRestart(t *testing.T) {
	fake := clock.NewFake(time.Now())
	rs := newReplicaSet(t, 2, fake, func(o *grants.Options) { o.ClockCheck = time.Hour })
	a, b := rs.r[0], rs.r[1]
	ctx := context.Background()
	full, room := gateway.NewGrant(gateway.Info{ID: "g_full"}), gateway.NewGrant(gateway.Info{ID: "g_room"})
	const max = 2
	cuts := make(chan string, 4)
	take := func(r *replica, g *gateway.Grant, name string) gateway.Slot {
		t.Helper()
		sl, err := r.svc.SessionSlots().Take(ctx, g, max, func(why string) { cuts <- name + ": " + why })
		if err != nil || sl == nil {
			t.Fatalf("%s: a slot of %s on %s: %v, %v", name, g.ID, r.name, sl, err)
		}
		return sl
	}
	take(a, full, "A's first of g_full")
	take(a, full, "A's second of g_full")
	take(a, room, "A's of g_room")

	conn, err := pgx.Connect(ctx, rs.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	count := func(grant string) int {
		t.Helper()
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM session_slots WHERE grant_id = $1", grant).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := conn.Exec(ctx, "TRUNCATE session_slots"); err != nil {
		t.Fatal(err)
	}
	// B counts an empty table: it fills g_full.
	b1, b2 := take(b, full, "B's first of g_full"), take(b, full, "B's second of g_full")
	defer b1.Release()
	defer b2.Release()

	fake.Advance(grants.DefaultSlotLease/3 + time.Second) // A renews
	var got []string
	for range 2 {
		select {
		case why := <-cuts:
			got = append(got, why)
		case <-time.After(10 * time.Second):
			t.Fatalf("A's sessions of g_full were not ended though B fills the grant since the restart (cut: %q; g_full's slots: %d of %d)", got, count(full.ID), max)
		}
	}
	for _, why := range got {
		if !strings.HasPrefix(why, "A's") || !strings.Contains(why, "g_full") || !strings.Contains(why, "could not take it again") || !strings.Contains(why, "max_sessions_per_grant") {
			t.Errorf("cut %q: want A's sessions of g_full, with a reason saying the slot could not be taken again", why)
		}
	}
	waitFor(t, "A's slot of g_room taken again", func() bool { return count(room.ID) == 1 })
	if n := count(full.ID); n != max {
		t.Fatalf("g_full holds %d slots after A's renewal; want B's %d", n, max)
	}
	select {
	case why := <-cuts:
		t.Fatalf("a session with room under the bound was ended: %s", why)
	default:
	}
	// A's later renewals leave the grant as it is: its ended sessions hold
	// nothing, and g_room's slot is renewed.
	fake.Advance(grants.DefaultSlotLease / 3)
	waitFor(t, "a later renewal", func() bool { return count(room.ID) == 1 && count(full.ID) == max })
}
