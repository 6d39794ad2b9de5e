package gcpolicy

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
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
// default's GOGC after its next collection, and the floor back once it
// allocates faster.
func TestIdleDefault(t *testing.T) {
	applyAt(t, 1<<40) // nothing here allocates a TiB a second
	if got := gogc(); got != Floor*100/runtimeMinimum {
		t.Fatalf("GOGC %d at the start (a server starting up allocates), want the floor's %d", got, Floor*100/runtimeMinimum)
	}
	waitFor(t, func() int { return 100 })

	mu.Lock()
	running.busyRate = 0
	mu.Unlock()
	waitFor(t, func() int { return Floor * 100 / runtimeMinimum })
}

// TestEnvironmentWins: an operator's GOGC or GOMEMLIMIT leaves the runtime
// as the variables set it.
func TestEnvironmentWins(t *testing.T) {
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
	}
}
