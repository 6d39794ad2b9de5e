// Package gcpolicy sets the garbage collector's policy of `airlock serve`:
// a floor under the heap goal while the live heap is small and the server
// busy.
//
// A server's live heap is small (2-4 MB under load: bench/HISTORY.md), so
// with the runtime's default (GOGC=100) its heap goal sits at or near the
// runtime's 4 MB minimum and it collects after every 2.5 MB or so
// allocated: a mark of the whole live heap per ~200-1,000 calls, the
// largest item of the runtime's own that the gateway adds to a call
// (bench/HISTORY.md, "The whole airlock serve per pgbench statement" and
// "... per S3 GET 1 KiB"). Raising GOGC alone would also multiply a large
// live heap (GOGC=400: five times it), so the policy raises it only as far
// as the floor needs: after every collection it sets the percent that puts
// the next goal at Floor, never below GOGC=100 (so a live heap past
// Floor/2 gets the default's goal, twice itself) and never past the
// percent at which the runtime's own minimum (4 MiB × GOGC/100) alone
// reaches Floor.
//
// The floor lets up to Floor of garbage stay resident between collections,
// and the runtime keeps freed pages up to about the heap goal, so a server
// that went idle would keep them. The floor holds only while the server
// allocates at least BusyRate, measured over windows of at least
// IdleCheck. Each collection decides from the last window; while the
// floor is in force a timer also ends each window, since an idle server's
// next collection may be two minutes away (the runtime forces one that
// often) and its garbage and pages would stay until then. A window below
// BusyRate sets GOGC back to 100 and, when a timer's window did it, runs a
// collection: setting GOGC alone does not wake the runtime's scavenger, so
// the pages stayed resident until the next collection; after one the
// scavenger returns those past the new goal. A server whose load stopped
// gets the default's goal back within two IdleChecks and its pages soon
// after (bench/HISTORY.md, "The heap goal's floor dropped once idle"); the
// timer stops while the floor is not in force, and a collection that finds
// the server busy again raises it again.
//
// An operator's GOGC or GOMEMLIMIT in the environment stays in charge: with
// either set, Apply leaves the runtime as the variables set it and arms no
// check.
package gcpolicy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// Floor is the heap goal the policy keeps while the live heap is small:
// the heap may grow this far, garbage included, before a collection.
const Floor = 16 << 20

// BusyRate is the allocation rate, in bytes a second, from which the floor
// holds. At the default's goal (a collection per ~2.5 MB allocated) it is
// a collection every 10 s: below it the collector's cost is nothing to
// save. An idle server allocates about 17 KB a second (measured: 2 MB
// between two collections two minutes apart), well below it; a gateway
// serving 20 S3 calls or 100 PostgreSQL statements a second is above it.
const BusyRate = 256 << 10

// IdleCheck is the shortest window over which the policy measures the
// allocation rate, and how often it measures it while the floor is in
// force without waiting for a collection: a server that stopped being
// busy gets the default's goal back within twice this. A window this long
// holds 512 KiB at BusyRate, so the scheduling of a few calls does not
// make a steady load at the rate look idle, nor a collection that follows
// another by milliseconds (a forced one, the policy's own) make a few
// kilobytes look busy. A check reads the runtime's metrics and arms a
// timer: a few microseconds every IdleCheck while busy.
const IdleCheck = 2 * time.Second

// busyRate is BusyRate and clk the time source of the rate and of the
// checks: variables for the tests.
var (
	busyRate uint64      = BusyRate
	clk      clock.Clock = clock.Real
)

// runtimeMinimum is the runtime's heap minimum at GOGC=100
// (defaultHeapMinimum): at GOGC=p its minimum goal is runtimeMinimum×p/100.
const runtimeMinimum = 4 << 20

// Percent is the GOGC that puts the heap goal at floor for a live heap of
// live bytes and scan bytes of GC work (the live heap, stacks and globals):
// the runtime's goal is live + scan×GOGC/100, and at least its minimum,
// runtimeMinimum×GOGC/100. It is at least 100 and at most the percent at
// which that minimum is floor.
func Percent(floor, live, scan uint64) int {
	top := int(floor * 100 / runtimeMinimum)
	if top < 100 {
		return 100
	}
	if scan == 0 || live >= floor {
		if live == 0 {
			return top // no collection yet: the minimum alone sets the goal
		}
		return 100
	}
	p := ((floor-live)*100 + scan - 1) / scan // rounded up: the goal at least floor
	switch {
	case p < 100:
		return 100
	case p > uint64(top):
		return top
	}
	return int(p)
}

// mu serialises the decisions; running is the applied policy, at most one
// in the process.
var (
	mu      sync.Mutex
	running *tuner
)

// figures are what a decision reads: the last collection's live heap and
// scan work, and the bytes allocated since the process started.
type figures struct{ live, scan, allocs uint64 }

type tuner struct {
	floor    uint64
	busyRate uint64
	every    time.Duration // IdleCheck
	clock    clock.Clock
	// read gives the figures (false: the runtime has not got them),
	// setPercent sets GOGC, returning the one before, and collect runs a
	// collection: the runtime's in Apply, fakes in the tests of the
	// decisions.
	read       func() (figures, bool)
	setPercent func(int) int
	collect    func()

	// allocs and at are the bytes allocated since the start and the time
	// at the start of the rate's window, busy what the last window
	// measured; cur is the GOGC set last, prev the one before Apply,
	// restored by stop.
	allocs  uint64
	at      time.Time
	busy    bool
	cur     int
	prev    int
	check   clock.Timer // the pending check, nil when none
	gen     uint64      // counts the checks armed: a stale one does nothing
	stopped atomic.Bool
}

// Apply applies the policy to the process unless getenv("GOGC") or
// getenv("GOMEMLIMIT") is set (not empty), in which case it changes
// nothing: the operator's setting stays in charge. It reports whether it
// applied the policy; stop (never nil) ends it and restores GOGC to what it
// was before.
func Apply(getenv func(string) string) (stop func(), applied bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return func() {}, false
	}
	mu.Lock()
	defer mu.Unlock()
	if running != nil {
		return func() {}, false
	}
	t := newTuner(clk, readRuntime(), debug.SetGCPercent, runtime.GC)
	running = t
	t.start()
	t.arm()
	return t.stop, true
}

// newTuner is a tuner with the package's floor, rate and check interval.
func newTuner(c clock.Clock, read func() (figures, bool), set func(int) int, collect func()) *tuner {
	return &tuner{floor: Floor, busyRate: busyRate, every: IdleCheck, clock: c, read: read, setPercent: set, collect: collect}
}

// readRuntime reads the figures from runtime/metrics.
func readRuntime() func() (figures, bool) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}
	return func() (figures, bool) {
		metrics.Read(samples)
		var v [4]uint64
		for i, s := range samples {
			if s.Value.Kind() != metrics.KindUint64 {
				return figures{}, false
			}
			v[i] = s.Value.Uint64()
		}
		return figures{live: v[0], scan: v[0] + v[1] + v[2], allocs: v[3]}, true
	}
}

// start sets the floor's percent (a server starting up allocates) and
// keeps the GOGC from before for stop. Called with mu held.
func (t *tuner) start() {
	t.cur = t.percent(true)
	t.prev = t.setPercent(t.cur)
	t.schedule()
}

// percent reads the figures and gives the GOGC for them: the floor's if
// the process is busy (set, or allocating at least busyRate), else the
// default. A window since the last measurement of IdleCheck or more is
// measured: busy at busyRate. A shorter one is busy if it already holds
// what busyRate allocates in IdleCheck (a load starting, a collection
// every few hundred milliseconds at the default's goal, is found at its
// second one), and otherwise tells nothing: the decision keeps what the
// last window measured, and the window goes on.
func (t *tuner) percent(busy bool) int {
	f, ok := t.read()
	if !ok {
		return 100 // not in this runtime: the default
	}
	now := t.clock.Now()
	d := now.Sub(t.at)
	switch {
	case t.at.IsZero() || f.allocs < t.allocs:
		t.allocs, t.at = f.allocs, now
	case d >= t.every:
		t.busy = float64(f.allocs-t.allocs) >= float64(t.busyRate)*d.Seconds()
		t.allocs, t.at = f.allocs, now
	case float64(f.allocs-t.allocs) >= float64(t.busyRate)*t.every.Seconds():
		t.busy = true
		t.allocs, t.at = f.allocs, now
	}
	if busy {
		t.busy = true
	}
	if !t.busy {
		return 100
	}
	return Percent(t.floor, f.live, f.scan)
}

// decide sets the percent for the figures now, keeps a check pending
// while that is the floor's, and reports whether it just dropped the
// floor for want of allocations (not for a live heap past Floor/2).
// Called with mu held.
func (t *tuner) decide() (dropped bool) {
	if p := t.percent(false); p != t.cur {
		dropped = t.cur > 100 && !t.busy
		t.cur = p
		t.setPercent(p)
	}
	t.schedule()
	return dropped
}

// schedule arms a check for the end of the rate's window while the floor
// is in force and none is pending, and ends the pending one otherwise.
func (t *tuner) schedule() {
	switch {
	case t.cur > 100 && t.check == nil:
		t.gen++
		gen := t.gen
		t.check = t.clock.AfterFunc(t.at.Add(t.every).Sub(t.clock.Now()), func() { t.idleCheck(gen) })
	case t.cur <= 100 && t.check != nil:
		t.check.Stop()
		t.check = nil
		t.gen++
	}
}

// idleCheck is the decision of the check armed as gen. When it drops the
// floor it runs a collection: setting GOGC does not wake the runtime's
// scavenger, which returns the pages past the new goal only after a
// collection, and an idle server's next one could be two minutes away
// (measured: RssAnon unchanged over the 12 s after a drop without it;
// bench/HISTORY.md).
func (t *tuner) idleCheck(gen uint64) {
	mu.Lock()
	// A check stopped too late (the floor dropped and raised again while
	// it was starting) finds a newer one armed: it leaves it.
	if t.stopped.Load() || gen != t.gen {
		mu.Unlock()
		return
	}
	t.check = nil
	dropped := t.decide()
	mu.Unlock()
	if dropped {
		// Outside mu: the collection's own decision (afterGC) takes it.
		t.collect()
	}
}

// arm asks for a call after the next collection: a cleanup on an object
// nothing references runs once a collection has found it unreachable,
// on the runtime's cleanup goroutine.
func (t *tuner) arm() {
	s := new(sentinel)
	runtime.AddCleanup(s, func(t *tuner) { t.afterGC() }, t)
}

// sentinel holds a pointer so that it is not a tiny allocation, which
// would share its block, and its collection, with other objects.
type sentinel struct{ _ *byte }

// afterGC sets the percent for the live heap the collection just marked,
// and asks for the next call.
func (t *tuner) afterGC() {
	if t.stopped.Load() {
		return
	}
	mu.Lock()
	if !t.stopped.Load() {
		t.decide()
	}
	mu.Unlock()
	t.arm()
}

func (t *tuner) stop() {
	mu.Lock()
	defer mu.Unlock()
	if t.stopped.Swap(true) {
		return
	}
	if t.check != nil {
		t.check.Stop()
		t.check = nil
	}
	t.setPercent(t.prev)
	if running == t {
		running = nil
	}
}
