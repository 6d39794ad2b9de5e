package testenv

import (
	"runtime"
	"testing"
	"time"
)

// TestThreadCPUResolution: ThreadCPU tells apart computations of a
// millisecond or two, which the growth checks compare (TestFindFrameLinear
// times 0.5 ms against 2 ms). A millisecond of spinning reads as at least
// most of a millisecond, and never as more than the clock saw: the
// scheduler's ticks (getrusage) read 0 or 4 ms for it.
func TestThreadCPUResolution(t *testing.T) {
	if ThreadCPU() < 0 {
		t.Skip("no thread CPU clock outside Linux")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The best of several runs: on a loaded machine a run may be
	// descheduled, which takes from its CPU time its share of the clock's.
	var best time.Duration
	for range 100 {
		start, cpu := time.Now(), ThreadCPU()
		for ThreadCPU()-cpu < time.Millisecond {
		}
		d, wall := ThreadCPU()-cpu, time.Since(start)
		if d > wall {
			t.Fatalf("%v of the thread's CPU in %v of the clock", d, wall)
		}
		if best == 0 || d < best {
			best = d
		}
	}
	if best > 2*time.Millisecond {
		t.Errorf("spinning for a millisecond of the thread's CPU read as %v", best)
	}
}
