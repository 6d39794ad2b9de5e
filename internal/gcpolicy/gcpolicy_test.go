package gcpolicy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

func TestPercent(t *testing.T) {
	const mb = 1 << 20
	for _, c := range []struct {
		floor, live, scan uint64
		want              int
	}{
		{16 * mb, 0, 0, 400},                // before the first collection: the minimum is the floor
		{16 * mb, 2 * mb, 2*mb + mb/2, 400}, // small heap: capped where the minimum alone is the floor
		{16 * mb, 4 * mb, 4 * mb, 300},      // 4 + 4×3 = 16
		{16 * mb, 6 * mb, 6 * mb, 167},      // rounded up: 6 + 6×1.67 ≥ 16
		{16 * mb, 8 * mb, 8 * mb, 100},      // half the floor: the default's goal is the floor
		{16 * mb, 12 * mb, 12 * mb, 100},    // never below the default
		{16 * mb, 40 * mb, 41 * mb, 100},
		{2 * mb, 1 * mb, 1 * mb, 100}, // a floor under the runtime's own minimum changes nothing
	} {
		if got := Percent(c.floor, c.live, c.scan); got != c.want {
			t.Errorf("Percent(%d, %d, %d) = %d, want %d", c.floor, c.live, c.scan, got, c.want)
		}
		if got := Percent(c.floor, c.live, c.scan); got > 100 && c.live > 0 {
			if goal := max(c.live+c.scan*uint64(got)/100, runtimeMinimum*uint64(got)/100); goal < c.floor {
				t.Errorf("Percent(%d, %d, %d) = %d: goal %d under the floor", c.floor, c.live, c.scan, got, goal)
			}
		}
	}
}

func read(names ...string) []uint64 {
	s := make([]metrics.Sample, len(names))
	for i, n := range names {
		s[i].Name = n
	}
	metrics.Read(s)
	v := make([]uint64, len(s))
	for i := range s {
		v[i] = s[i].Value.Uint64()
	}
	return v
}

// gogc is the GOGC in force.
func gogc() int { return int(int64(read("/gc/gogc:percent")[0])) }

// waitPercent collects until the policy has set the percent it computes
// from the last collection's figures, and returns it.
func waitPercent(t *testing.T) int {
	t.Helper()
	return waitFor(t, func() int {
		v := read("/gc/heap/live:bytes", "/gc/scan/stack:bytes", "/gc/scan/globals:bytes")
		return Percent(Floor, v[0], v[0]+v[1]+v[2])
	})
}

// waitFor collects until GOGC is want() and returns it.
func waitFor(t *testing.T, want func() int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond) // the cleanup goroutine's turn
		w := want()
		if got := gogc(); got == w {
			return got
		} else if time.Now().After(deadline) {
			t.Fatalf("GOGC %d after a collection, want %d", got, w)
		}
	}
}

var keep [][]byte

// applyAt applies the policy with neither variable set and busyRate rate,
// from GOGC=100; the test's end stops it and restores both.
func applyAt(t *testing.T, rate uint64) (stop func()) {
	t.Helper()
	r := busyRate
	busyRate = rate
	before := debug.SetGCPercent(100)
	stop, applied := Apply(func(string) string { return "" })
	t.Cleanup(func() { stop(); debug.SetGCPercent(before); busyRate = r })
	if !applied {
		t.Fatal("not applied with neither GOGC nor GOMEMLIMIT set")
	}
	return stop
}

// TestApplyFloor: with neither variable set, the policy holds the heap goal
// at Floor while the live heap is small, follows it down as the live heap
// grows, gives the default's goal to a live heap past Floor/2, and its stop
// restores GOGC.
func TestApplyFloor(t *testing.T) {
	stop := applyAt(t, 0) // every collection finds the process busy

	if p := waitPercent(t); p != Floor*100/runtimeMinimum {
		t.Fatalf("GOGC %d with a small live heap, want %d", p, Floor*100/runtimeMinimum)
	}
	if goal := read("/gc/heap/goal:bytes")[0]; goal < Floor {
		t.Fatalf("heap goal %d with a small live heap, want at least %d", goal, Floor)
	}

	keep = append(keep, make([]byte, 5<<20)) // a live heap of about 6 MB
	if p := waitPercent(t); p <= 100 || p >= Floor*100/runtimeMinimum {
		t.Fatalf("GOGC %d with a live heap of 6 MB, want between", p)
	}
	if goal := read("/gc/heap/goal:bytes")[0]; goal < Floor || goal > Floor+Floor/8 {
		t.Fatalf("heap goal %d with a live heap of 6 MB, want about %d", goal, Floor)
	}

	keep = append(keep, make([]byte, 20<<20)) // past the floor
	if p := waitPercent(t); p != 100 {
		t.Fatalf("GOGC %d with a live heap past the floor, want 100", p)
	}
	keep = nil

	stop()
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d after stop, want the 100 from before", got)
	}
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d after stop and a collection, want 100", got)
	}
}

// TestIdleDefault: a process that allocates less than busyRate gets the
// default's GOGC, and the floor back from a collection once it allocates
// faster.
func TestIdleDefault(t *testing.T) {
	fake := clock.NewFake(time.Now())
	defer func(c clock.Clock) { clk = c }(clk)
	clk = fake
	applyAt(t, 1<<40) // nothing here allocates a TiB a second
	if got := gogc(); got != top {
		t.Fatalf("GOGC %d at the start (a server starting up allocates), want the floor's %d", got, top)
	}
	fake.Advance(IdleCheck)
	waitFor(t, func() int { return 100 })

	mu.Lock()
	running.busyRate = 0
	mu.Unlock()
	fake.Advance(IdleCheck) // a window long enough to measure
	waitFor(t, func() int { return top })
}

// TestEnvironmentWins: an operator's GOGC or GOMEMLIMIT leaves the runtime
// as the variables set it.
func TestEnvironmentWins(t *testing.T) {
	fake := clock.NewFake(time.Now())
	defer func(c clock.Clock) { clk = c }(clk)
	clk = fake
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	for _, env := range []map[string]string{
		{"GOGC": "100"},
		{"GOGC": "off"},
		{"GOMEMLIMIT": "1GiB"},
		{"GOGC": "50", "GOMEMLIMIT": "512MiB"},
	} {
		stop, applied := Apply(func(k string) string { return env[k] })
		if applied {
			stop()
			t.Fatalf("applied with %v", env)
		}
		stop()
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		if got := gogc(); got != 150 {
			t.Fatalf("GOGC %d with %v, want it left at 150", got, env)
		}
		if fake.Pending() != 0 {
			t.Fatalf("%d checks armed with %v, want none", fake.Pending(), env)
		}
	}
}

// fakeRuntime is the figures a tuner reads, the GOGC it sets and the
// collections it runs, for tests of the decisions apart from the runtime.
type fakeRuntime struct {
	f        figures
	set      []int // every GOGC set, in order
	cur      int
	collects int
}

func (r *fakeRuntime) read() (figures, bool) { return r.f, true }
func (r *fakeRuntime) setPercent(p int) int {
	old := r.cur
	r.cur = p
	r.set = append(r.set, p)
	return old
}
func (r *fakeRuntime) collect() { r.collects++ }

// newFakeTuner starts a tuner on a fake clock and runtime whose last
// collection found a live heap of 2 MiB (the floor's GOGC is then the
// top one, 400), as Apply starts it from GOGC=100.
func newFakeTuner(t *testing.T) (*tuner, *clock.Fake, *fakeRuntime) {
	t.Helper()
	c := clock.NewFake(time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC))
	r := &fakeRuntime{f: figures{live: 2 << 20, scan: 5 << 19, allocs: 100 << 20}, cur: 100}
	tu := newTuner(c, r.read, r.setPercent, r.collect)
	tu.busyRate = BusyRate
	mu.Lock()
	tu.start()
	mu.Unlock()
	t.Cleanup(tu.stop)
	return tu, c, r
}

// gc is a collection's decision on the fake: the tuner's afterGC without
// the next sentinel, which would wait for a real collection.
func gc(tu *tuner) {
	mu.Lock()
	defer mu.Unlock()
	tu.decide()
}

const top = Floor * 100 / runtimeMinimum

// window is what BusyRate allocates in IdleCheck.
const window = uint64(BusyRate * IdleCheck / time.Second)

// TestIdleCheckDropsFloor: with the floor in force, a check every
// IdleCheck keeps it while the process still allocates BusyRate, and sets
// GOGC back to 100 and runs a collection, without waiting for one, once it
// does not; no check is pending while the floor is not in force, and a
// collection that finds the process busy again raises it again.
func TestIdleCheckDropsFloor(t *testing.T) {
	tu, c, r := newFakeTuner(t)
	if r.cur != top || c.Pending() != 1 {
		t.Fatalf("at the start: GOGC %d, %d checks pending; want %d and one", r.cur, c.Pending(), top)
	}

	r.f.allocs += window // busy: just the rate
	c.Advance(IdleCheck)
	if r.cur != top || len(r.set) != 1 || c.Pending() != 1 || r.collects != 0 {
		t.Fatalf("a busy check: GOGC %d (set %v), %d checks pending, %d collections; want %d kept, the next check armed, none", r.cur, r.set, c.Pending(), r.collects, top)
	}

	r.f.allocs += window - 1 // a byte under the rate
	c.Advance(IdleCheck)
	if r.cur != 100 || c.Pending() != 0 || r.collects != 1 {
		t.Fatalf("an idle check: GOGC %d (set %v), %d checks pending, %d collections; want 100, none, one", r.cur, r.set, c.Pending(), r.collects)
	}
	c.Advance(time.Hour)
	if len(r.set) != 2 || r.collects != 1 {
		t.Fatalf("GOGC set %v, %d collections after an hour idle; want nothing more after the drop", r.set, r.collects)
	}

	// The runtime's forced collection of an idle server keeps the
	// default; the load back, a collection IdleCheck later raises the
	// floor again and arms a check.
	r.f.allocs += 2 << 20
	gc(tu)
	if r.cur != 100 || c.Pending() != 0 {
		t.Fatalf("an idle collection: GOGC %d, %d checks pending; want 100 and none", r.cur, c.Pending())
	}
	c.Advance(IdleCheck)
	r.f.allocs += 8 << 20
	gc(tu)
	if r.cur != top || c.Pending() != 1 || r.collects != 1 {
		t.Fatalf("a busy collection: GOGC %d, %d checks pending, %d collections; want %d, one, the one from before", r.cur, c.Pending(), r.collects, top)
	}
}

// TestIdleShortWindow: a window shorter than IdleCheck is busy once it
// holds what BusyRate allocates in IdleCheck and tells nothing before
// then: the policy's own collection just after it dropped the floor (a few
// kilobytes in a millisecond, a high rate) does not raise it again, a
// collection with nothing allocated since the start does not drop it,
// and a load starting after a long idle window, which dilutes its first
// collection's bytes, gets the floor at its second.
func TestIdleShortWindow(t *testing.T) {
	tu, c, r := newFakeTuner(t)
	c.Advance(time.Millisecond)
	gc(tu)
	if r.cur != top {
		t.Fatalf("GOGC %d after a collection a millisecond after the start with nothing allocated, want %d", r.cur, top)
	}
	c.Advance(IdleCheck) // the check: idle, dropped
	if r.cur != 100 || r.collects != 1 {
		t.Fatalf("GOGC %d, %d collections after an idle check; want 100 and one", r.cur, r.collects)
	}
	c.Advance(time.Millisecond)
	r.f.allocs += 64 << 10
	gc(tu) // the check's collection, as the runtime reports it
	if r.cur != 100 || c.Pending() != 0 {
		t.Fatalf("the policy's own collection: GOGC %d, %d checks pending; want 100 and none", r.cur, c.Pending())
	}

	// Idle for a minute, then a load: its first collection at the
	// default's goal (2 MiB allocated) is diluted by the idle minute,
	// its second, 200 ms later, is not.
	c.Advance(time.Minute)
	r.f.allocs += 2 << 20
	gc(tu)
	if r.cur != 100 {
		t.Fatalf("GOGC %d after 2 MiB over a minute, want 100", r.cur)
	}
	c.Advance(200 * time.Millisecond)
	r.f.allocs += window
	gc(tu)
	if r.cur != top || c.Pending() != 1 {
		t.Fatalf("a collection 200 ms after another with %d bytes allocated: GOGC %d, %d checks pending; want %d and one", window, r.cur, c.Pending(), top)
	}

	tu.idleCheck(tu.gen - 1)
	if r.cur != top || c.Pending() != 1 {
		t.Fatalf("after a stale check: GOGC %d, %d checks pending; want %d and one", r.cur, c.Pending(), top)
	}
}

// TestIdleCheckNoneWithoutFloor: a busy check that finds a live heap past
// Floor/2 sets GOGC=100 with no collection and no further check; stop
// ends the pending check and restores GOGC.
func TestIdleCheckNoneWithoutFloor(t *testing.T) {
	tu, c, r := newFakeTuner(t)
	r.f.live, r.f.scan = 12<<20, 12<<20
	r.f.allocs += 64 << 20
	c.Advance(IdleCheck)
	if r.cur != 100 || c.Pending() != 0 || r.collects != 0 {
		t.Fatalf("a busy check with a live heap past Floor/2: GOGC %d, %d checks pending, %d collections; want 100, none, none", r.cur, c.Pending(), r.collects)
	}

	r.f.live, r.f.scan = 2<<20, 5<<19
	r.f.allocs += 64 << 20
	c.Advance(IdleCheck)
	gc(tu)
	if r.cur != top || c.Pending() != 1 {
		t.Fatalf("GOGC %d, %d checks pending with the floor back; want %d and one", r.cur, c.Pending(), top)
	}
	tu.stop()
	if r.cur != 100 || c.Pending() != 0 {
		t.Fatalf("after stop: GOGC %d, %d checks pending; want the 100 from before and none", r.cur, c.Pending())
	}
	c.Advance(time.Hour)
	if got := r.set[len(r.set)-1]; got != 100 || r.collects != 0 {
		t.Fatalf("GOGC set to %d, %d collections after stop; want nothing after the restore", got, r.collects)
	}
}

// TestApplyIdleDropsFloor: the applied policy, on the runtime, sets GOGC
// back to 100 and runs a collection IdleCheck after its start when the
// process allocates less than BusyRate (without the check it kept the
// floor, and the pages under it, until the next collection: up to two
// minutes for an idle server).
func TestApplyIdleDropsFloor(t *testing.T) {
	fake := clock.NewFake(time.Now())
	defer func(c clock.Clock) { clk = c }(clk)
	clk = fake
	applyAt(t, BusyRate)
	if got := gogc(); got != top {
		t.Fatalf("GOGC %d at the start, want the floor's %d", got, top)
	}
	cycles := read("/gc/cycles/total:gc-cycles")[0]
	fake.Advance(IdleCheck) // this test allocates far less than 512 KiB
	if got := gogc(); got != 100 {
		t.Fatalf("GOGC %d IdleCheck after the start with the process idle, want 100", got)
	}
	if n := read("/gc/cycles/total:gc-cycles")[0]; n == cycles {
		t.Fatal("no collection with the drop")
	}
}
