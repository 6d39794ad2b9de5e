// Package gcpolicy sets the garbage collector's policy of `airlock serve`:
// a floor under the heap goal while the live heap is small and the server
// busy.
//
// A server's live heap is small (2-4 MB under load: bench/README.md), so
// with the runtime's default (GOGC=100) its heap goal sits at or near the
// runtime's 4 MB minimum and it collects after every 2.5 MB or so
// allocated: a mark of the whole live heap per ~200-1,000 calls, the
// largest item of the runtime's own that the gateway adds to a call
// (bench/README.md, "The whole airlock serve per pgbench statement" and
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
// allocates at least BusyRate (measured from one collection to the next):
// below that the default's collections cost little (one per 10 s or less),
// and a collection of an idle server (the runtime forces one every two
// minutes) sets GOGC back to 100, after which the runtime's scavenger
// returns the pages past the default's goal.
//
// An operator's GOGC or GOMEMLIMIT in the environment stays in charge: with
// either set, Apply leaves the runtime as the variables set it.
package gcpolicy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
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

// busyRate is BusyRate; a variable for the tests.
var busyRate uint64 = BusyRate

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

// policy is the applied policy's state; at most one runs in the process.
var (
	mu      sync.Mutex
	running *tuner
)

type tuner struct {
	floor    uint64
	busyRate uint64
	// allocs and at are the bytes allocated since the start
	// (/gc/heap/allocs:bytes) and the time at the last call.
	allocs  uint64
	at      time.Time
	stopped atomic.Bool
	prev    int // GOGC before Apply, restored by stop
	cur     int // the GOGC set last
	samples []metrics.Sample
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
	t := &tuner{floor: Floor, busyRate: busyRate, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
		{Name: "/gc/heap/allocs:bytes"},
	}}
	running = t
	t.cur = t.percent(true) // a server starting up allocates
	t.prev = debug.SetGCPercent(t.cur)
	t.arm()
	return t.stop, true
}

// percent reads the last collection's figures and gives the GOGC for them:
// the floor's if the process allocated at least busyRate since the last
// call (or busy is set), else the default.
func (t *tuner) percent(busy bool) int {
	metrics.Read(t.samples)
	var v [4]uint64
	for i, s := range t.samples {
		if s.Value.Kind() != metrics.KindUint64 {
			return 100 // not in this runtime: the default
		}
		v[i] = s.Value.Uint64()
	}
	now := time.Now()
	if !t.at.IsZero() && v[3] >= t.allocs {
		busy = busy || float64(v[3]-t.allocs) >= float64(t.busyRate)*now.Sub(t.at).Seconds()
	}
	t.allocs, t.at = v[3], now
	if !busy {
		return 100
	}
	return Percent(t.floor, v[0], v[0]+v[1]+v[2])
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
		if p := t.percent(false); p != t.cur {
			t.cur = p
			debug.SetGCPercent(p)
		}
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
	debug.SetGCPercent(t.prev)
	running = nil
}
