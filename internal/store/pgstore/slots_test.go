package pgstore

import (
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/store"
)

// TestSessionSlots: TakeSlot admits up to max unexpired slots of a grant
// (another grant's do not count), deletes expired ones, takes kept slots
// over only when they alone stand in the way (its own replica's first),
// and refuses while the grant's sessions fill the bound; RenewSlots
// reports kept slots taken over and writes a session's slot again;
// ClearSlots drops one replica's; a take waits for another in flight for
// the same grant and counts what it wrote.
func TestSessionSlots(t *testing.T) {
	s, _ := openFresh(t)
	ctx := t.Context()
	now := time.Unix(1700000000, 0)
	lease := now.Add(30 * time.Second)
	take := func(id, grant, replica string, max int, at time.Time) (bool, []store.Slot) {
		t.Helper()
		ok, stolen, err := s.TakeSlot(ctx, store.Slot{ID: id, GrantID: grant, Replica: replica, LeaseUntil: at.Add(30 * time.Second)}, max, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok, stolen
	}
	ids := func(grant string) []string {
		t.Helper()
		rows, err := s.pool.Query(ctx, "SELECT id FROM session_slots WHERE grant_id = $1 ORDER BY id", grant)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}

	if ok, _ := take("a1", "g", "A", 2, now); !ok {
		t.Fatal("first slot refused")
	}
	if ok, _ := take("x1", "other", "A", 1, now); !ok {
		t.Fatal("another grant's slot refused")
	}
	if ok, _ := take("b1", "g", "B", 2, now); !ok {
		t.Fatal("second slot refused")
	}
	if ok, stolen := take("b2", "g", "B", 2, now); ok || len(stolen) != 0 {
		t.Fatalf("third slot of 2: taken %v, stolen %v", ok, stolen)
	}

	// Kept slots are taken over, B's own first, only as many as needed.
	if err := s.KeepSlot(ctx, "a1"); err != nil {
		t.Fatal(err)
	}
	if err := s.KeepSlot(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	ok, stolen := take("b3", "g", "B", 2, now)
	if !ok || len(stolen) != 1 || stolen[0].ID != "b1" || stolen[0].Replica != "B" || stolen[0].GrantID != "g" {
		t.Fatalf("a slot where two are kept: taken %v, stolen %+v; want b1 (B's own)", ok, stolen)
	}
	if got := ids("g"); !slices.Equal(got, []string{"a1", "b3"}) {
		t.Fatalf("slots %v", got)
	}
	// With the sessions alone at the bound nothing is taken over.
	if ok, stolen := take("b4", "g", "B", 1, now); ok || len(stolen) != 0 {
		t.Fatalf("at the bound of sessions alone: taken %v, stolen %v", ok, stolen)
	}
	if got := ids("g"); !slices.Equal(got, []string{"a1", "b3"}) {
		t.Fatalf("a refused take changed the slots: %v", got)
	}

	// A's renewal finds its kept slot still there; once taken over, lost.
	lost, restored, err := s.RenewSlots(ctx, "A", []store.Slot{{ID: "a1", GrantID: "g", Kept: true}}, lease)
	if err != nil || len(lost) != 0 || len(restored) != 0 {
		t.Fatalf("renewal: lost %v, restored %v, %v", lost, restored, err)
	}
	if ok, stolen := take("b5", "g", "B", 2, now); !ok || len(stolen) != 1 || stolen[0].ID != "a1" {
		t.Fatalf("taking A's kept slot: %v, %+v", ok, stolen)
	}
	lost, _, err = s.RenewSlots(ctx, "A", []store.Slot{{ID: "a1", GrantID: "g", Kept: true}}, lease)
	if err != nil || !slices.Equal(lost, []string{"a1"}) {
		t.Fatalf("renewal after the takeover: lost %v, %v", lost, err)
	}
	// A session's slot that went missing is returned, not written: its
	// replica takes it again under the grant's bound.
	if err := s.ReleaseSlots(ctx, []string{"b5"}); err != nil {
		t.Fatal(err)
	}
	_, missing, err := s.RenewSlots(ctx, "B", []store.Slot{{ID: "b3", GrantID: "g"}, {ID: "b5", GrantID: "g"}}, lease)
	if err != nil || !slices.Equal(missing, []string{"b5"}) {
		t.Fatalf("renewal of a missing session slot: missing %v, %v", missing, err)
	}
	if got := ids("g"); !slices.Equal(got, []string{"b3"}) {
		t.Fatalf("a renewal wrote a missing slot back: %v", got)
	}

	// Leases pass: by the taker's time, the slots count no more.
	later := lease.Add(time.Second)
	if ok, _ := take("c1", "g", "C", 1, later); !ok {
		t.Fatal("a slot after every lease passed was refused")
	}
	if got := ids("g"); !slices.Equal(got, []string{"c1"}) {
		t.Fatalf("expired slots left: %v", got)
	}
	if err := s.ClearSlots(ctx, "C"); err != nil {
		t.Fatal(err)
	}
	if got := ids("g"); len(got) != 0 {
		t.Fatalf("ClearSlots left %v", got)
	}

	// A take waits for one in flight for the same grant (its lock), and
	// then sees the slot it wrote: two replicas never both take the last.
	other, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback(ctx)
	if _, err := other.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", "airlock.slots/"+s.schema+"/race"); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, "INSERT INTO session_slots (id, grant_id, replica, lease_until) VALUES ('r1', 'race', 'A', $1)", lease.UnixNano()); err != nil {
		t.Fatal(err)
	}
	result := make(chan bool, 1)
	go func() {
		ok, _, err := s.TakeSlot(ctx, store.Slot{ID: "r2", GrantID: "race", Replica: "B", LeaseUntil: lease}, 1, now)
		if err != nil {
			t.Error(err)
		}
		result <- ok
	}()
	for waiting := false; !waiting; {
		select {
		case ok := <-result:
			t.Fatalf("a take did not wait for the grant's take in flight (taken %v)", ok)
		default:
		}
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory')`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if <-result {
		t.Fatal("the take after a committed one took the grant's last slot too")
	}
	if got := ids("race"); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("slots %v", got)
	}
}

// BenchmarkSessionSlot is what the slots add to a session on a shared
// store: a take (the login's round trip) and a release (the end's), with
// 10 other slots of the grant held, as the gateway calls them: ns/op is
// their latency together, cpu-µs/op this process's CPU (getrusage) for
// both, take-p50-µs the take's median latency.
func BenchmarkSessionSlot(b *testing.B) {
	s, _ := openFresh(b)
	ctx := b.Context()
	now := time.Now()
	for i := range 10 {
		if ok, _, err := s.TakeSlot(ctx, store.Slot{ID: "held" + strconv.Itoa(i), GrantID: "g", Replica: "A", LeaseUntil: now.Add(time.Hour)}, 100, now); err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
	takes := make([]time.Duration, 0, b.N)
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		id := "s" + strconv.Itoa(i)
		t0 := time.Now()
		if ok, _, err := s.TakeSlot(ctx, store.Slot{ID: id, GrantID: "g", Replica: "A", LeaseUntil: now.Add(time.Hour)}, 100, now); err != nil || !ok {
			b.Fatal(ok, err)
		}
		takes = append(takes, time.Since(t0))
		if err := s.ReleaseSlots(ctx, []string{id}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
	slices.Sort(takes)
	b.ReportMetric(float64(takes[len(takes)/2].Microseconds()), "take-p50-µs")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
