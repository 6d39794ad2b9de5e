package pggw

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// The releaser gives memory back after a sweep that found no new
// connection since the one before, once sockets were shed since the last
// release, at most once per releaseEvery, and only when there is at least
// releaseMin to give.
func TestMemReleaser(t *testing.T) {
	c := clock.NewFake(time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC))
	var releases int
	var conns uint64
	avail := uint64(releaseMin)
	r := &memReleaser{clock: c, every: releaseEvery, min: releaseMin, accepted: func() uint64 { return conns },
		releasable: func() uint64 { return avail }, release: func() { releases++ }}
	sweep := func(what string, shed int, want bool) {
		t.Helper()
		before := releases
		if got := r.onSweep(shed); got != want || releases-before != map[bool]int{true: 1}[want] {
			t.Fatalf("%s: onSweep(%d) = %v with %d releases, want %v", what, shed, got, releases-before, want)
		}
	}
	conns = 80
	sweep("logins under way, nothing shed", 0, false)
	conns = 120
	sweep("logins under way, the first sockets shed", 40, false)
	sweep("no new connection since the last sweep", 0, true)
	sweep("quiet, nothing shed since the release", 0, false)
	c.Advance(releaseEvery - time.Second)
	sweep("within releaseEvery of the last", 160, false)
	c.Advance(time.Second)
	avail = releaseMin - 1
	sweep("less than releaseMin to give", 0, false)
	avail = 64 << 20
	conns++
	sweep("a connection since the last sweep", 0, false)
	sweep("quiet again, sockets shed before", 0, true)
	c.Advance(releaseEvery)
	sweep("nothing shed since the last release", 0, false)
	sweep("shed, quiet, releaseEvery after the last", 1, true)
}

// heapReleasable counts what a release gives back: dead objects not yet
// collected count, and debug.FreeOSMemory lowers the figure. Other tests'
// goroutines may still allocate meanwhile (the package's tests share the
// process), so only the garbage made here is relied on.
func TestHeapReleasable(t *testing.T) {
	if memRelease.clock != clock.Real || memRelease.every != releaseEvery || memRelease.min != releaseMin {
		t.Fatalf("process releaser %+v, want the real clock, %v and %d", memRelease, releaseEvery, releaseMin)
	}
	runtime.GC()
	gc := debug.SetGCPercent(-1) // no collection while the garbage is made
	var sink []byte
	for range 4096 {
		sink = make([]byte, 1024)
	}
	_ = sink
	made := heapReleasable()
	debug.SetGCPercent(gc)
	if made < 3<<20 { // less what the allocating P still caches
		t.Fatalf("with 4 MiB of garbage, %d bytes releasable, want at least 3 MiB", made)
	}
	debug.FreeOSMemory()
	if n := heapReleasable(); n >= made {
		t.Fatalf("after debug.FreeOSMemory, %d bytes releasable, want less than the %d before it", n, made)
	}
}
