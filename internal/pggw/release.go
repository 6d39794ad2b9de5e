package pggw

import (
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// Giving the heap's free pages back to the system once sessions go idle.
//
// A burst of logins leaves garbage (about 27 KiB each in `airlock serve`:
// SCRAM, pgconn's login, the session's record) that fills the heap up to
// Go's heap goal, twice the live heap and at least 4 MB, before a
// collection frees it. The runtime keeps freed pages resident up to about
// that goal (its background scavenger returns only what lies beyond), so
// a gateway that served a burst and then sits with its sessions idle
// keeps the garbage's pages as VmRSS: bench/pgbench measured 1.1-1.7 MB
// of heap pages of the 1.8-2.5 MB its process grew by over 80 logins
// (bench/HISTORY.md, "Where an idle connection's VmRSS goes").
//
// Once the logins have stopped and sessions have gone idle (a sweep of
// the parker found no connection accepted since the one before, 2.5 s,
// and sockets were shed since the last release: parked for
// shedParkedAfter), memRelease gives those pages back with
// debug.FreeOSMemory (a collection, then every free page returned), at
// most once per releaseEvery and only when a collection and the scavenger
// could return at least releaseMin. It costs one forced collection of the
// live heap and the madvise calls (6-14 ms of CPU measured for live heaps
// of 2-32 MB), paid on netpark's sweeping goroutine, and later page faults
// for the pages the heap grows back into when the gateway gets busy again.

// releaseEvery is the shortest time between two releases: it bounds their
// cost (one forced collection a minute at most) whatever the sessions do.
const releaseEvery = time.Minute

// releaseMin is the least a release must be able to give back: below it
// the forced collection costs more than the pages are worth.
const releaseMin = 1 << 20

// accepted counts the connections the process's gateways accepted: a
// sweep that finds it unchanged since the last one saw no login start.
var accepted atomic.Uint64

// memRelease is the process's releaser, called by the parker's sweeps.
var memRelease = &memReleaser{
	clock:      clock.Real,
	every:      releaseEvery,
	min:        releaseMin,
	accepted:   accepted.Load,
	releasable: heapReleasable,
	release:    debug.FreeOSMemory,
}

// memReleaser decides when to give the heap's free pages back. onSweep is
// called from one goroutine (netpark's sweep), so it needs no lock.
type memReleaser struct {
	clock      clock.Clock
	every      time.Duration
	min        uint64
	accepted   func() uint64
	releasable func() uint64
	release    func()

	seen  uint64    // accepted() at the last sweep
	idled bool      // sockets were shed since the last release
	last  time.Time // of the last release; zero before the first
}

// onSweep is netpark's OnSweep function: a sweep just shed n sockets. It
// reports whether it released.
func (r *memReleaser) onSweep(n int) bool {
	if n > 0 {
		r.idled = true
	}
	a := r.accepted()
	quiet := a == r.seen
	r.seen = a
	if !quiet || !r.idled {
		return false
	}
	now := r.clock.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		return false
	}
	if r.releasable() < r.min {
		return false
	}
	r.last, r.idled = now, false
	r.release()
	return true
}

// heapReleasable estimates what a collection and a full scavenge would
// give back: the heap's free pages not yet returned, and its dead objects
// not yet collected (the objects in the heap less the live heap the last
// collection marked).
func heapReleasable() uint64 {
	s := []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(s)
	for _, x := range s {
		if x.Value.Kind() != metrics.KindUint64 {
			return 0 // not in this runtime: release nothing
		}
	}
	free, objects, live := s[0].Value.Uint64(), s[1].Value.Uint64(), s[2].Value.Uint64()
	if objects > live {
		free += objects - live
	}
	return free
}
