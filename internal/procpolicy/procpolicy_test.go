package procpolicy

import (
	"bytes"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

func TestNext(t *testing.T) {
	for _, c := range []struct {
		name         string
		atOne        bool
		quiet        int
		cores        float64
		raise, lower bool
		quietNext    int
	}{
		{"one P, idle", true, 0, 0.01, false, false, 0},
		{"one P, under the raise", true, 0, RaiseCPU - 0.01, false, false, 0},
		{"one P, at the raise", true, 0, RaiseCPU, true, false, 0},
		{"one P, past a core (system time off the P)", true, 0, 1.3, true, false, 0},
		{"more, busy", false, 0, 2.5, false, false, 0},
		{"more, in the band", false, 5, (LowerCPU + RaiseCPU) / 2, false, false, 0},
		{"more, at the lower bound: not quiet", false, 3, LowerCPU, false, false, 0},
		{"more, quiet once", false, 0, LowerCPU - 0.01, false, false, 1},
		{"more, quiet but one", false, LowerAfter - 2, 0.1, false, false, LowerAfter - 1},
		{"more, quiet long enough", false, LowerAfter - 1, 0.1, false, true, 0},
	} {
		raise, lower, quiet := next(c.atOne, c.quiet, c.cores)
		if raise != c.raise || lower != c.lower || quiet != c.quietNext {
			t.Errorf("%s: next(%v, %d, %.2f) = %v, %v, %d; want %v, %v, %d", c.name, c.atOne, c.quiet, c.cores, raise, lower, quiet, c.raise, c.lower, c.quietNext)
		}
	}
}

// fakeRuntime is the tuner's view of a process: CPU time the test moves,
// and a GOMAXPROCS whose default is def.
type fakeRuntime struct {
	mu    sync.Mutex
	cpu   time.Duration
	procs int
	def   int
	sets  []int
}

func (f *fakeRuntime) read() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cpu, true
}

func (f *fakeRuntime) set(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sets = append(f.sets, n)
	if n == 0 {
		n = f.def
	}
	f.procs = n
	return n
}

func (f *fakeRuntime) use(d time.Duration) {
	f.mu.Lock()
	f.cpu += d
	f.mu.Unlock()
}

func (f *fakeRuntime) now() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs
}

// TestTunerFollowsTheLoad runs the tuner on a fake clock through a load
// that starts, holds, eases into the band, and stops: one P at the start,
// the default from the first window over RaiseCPU, the default kept in the
// band, one P again after LowerAfter quiet windows, and the default back
// when stopped, with a log line for each change.
func TestTunerFollowsTheLoad(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	rt := &fakeRuntime{def: 2}
	var logs bytes.Buffer
	tu := newTuner(clk, rt.read, rt.set, slog.New(slog.NewTextHandler(&logs, nil)))
	if !tu.start() {
		t.Fatal("start: not applied with a default of 2 Ps")
	}
	if rt.now() != 1 {
		t.Fatalf("after start: %d Ps, want 1", rt.now())
	}
	window := func(cores float64) int {
		rt.use(time.Duration(cores * float64(Window)))
		clk.Advance(Window)
		return rt.now()
	}
	for i := range 3 {
		if p := window(0.5); p != 1 {
			t.Fatalf("window %d at 0.5 of a core: %d Ps, want 1", i, p)
		}
	}
	if p := window(0.9); p != 2 {
		t.Fatalf("a window at 0.9 of a core: %d Ps, want 2", p)
	}
	for i := range 20 {
		if p := window(0.6); p != 2 {
			t.Fatalf("window %d in the band (0.6): %d Ps, want 2 kept", i, p)
		}
	}
	for i := range LowerAfter - 1 {
		if p := window(0.1); p != 2 {
			t.Fatalf("quiet window %d of %d: %d Ps, want 2 until %d", i+1, LowerAfter, p, LowerAfter)
		}
	}
	if p := window(0.5); p != 2 {
		t.Fatalf("a window in the band after %d quiet ones: %d Ps", LowerAfter-1, p)
	}
	for range LowerAfter - 1 {
		window(0.1)
	}
	if p := rt.now(); p != 2 {
		t.Fatalf("the band's window did not restart the count: %d Ps after %d more quiet windows", p, LowerAfter-1)
	}
	if p := window(0.1); p != 1 {
		t.Fatalf("after %d quiet windows in a row: %d Ps, want 1", LowerAfter, p)
	}
	if got := strings.Count(logs.String(), "msg=gomaxprocs"); got != 2 {
		t.Errorf("%d log lines for 2 changes:\n%s", got, logs.String())
	}
	if !strings.Contains(logs.String(), "procs=2 cpu_cores=0.9") {
		t.Errorf("the raise's log line does not give its figures:\n%s", logs.String())
	}

	tu.stop()
	if rt.now() != 2 || clk.Pending() != 0 {
		t.Fatalf("after stop: %d Ps (want the default, 2), %d checks pending (want 0)", rt.now(), clk.Pending())
	}
	sets := len(rt.sets)
	window(3)
	tu.stop()
	if len(rt.sets) != sets {
		t.Fatalf("the runtime's Ps set %v after stop", rt.sets[sets:])
	}
}

// TestTunerOnOneCPU: where the default is one P there is nothing to save;
// the tuner does not start, and leaves no check behind.
func TestTunerOnOneCPU(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	rt := &fakeRuntime{def: 1}
	if newTuner(clk, rt.read, rt.set, nil).start() {
		t.Fatal("started with a default of one P")
	}
	if clk.Pending() != 0 {
		t.Fatalf("%d checks pending", clk.Pending())
	}
}

// TestTunerRaisesOnceTheDefaultGrows: a raise that finds the default at
// one P (a container's CPU limit lowered since the start) stays at one and
// logs nothing; a later busy window, the limit raised again, gets the new
// default.
func TestTunerRaisesOnceTheDefaultGrows(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	rt := &fakeRuntime{def: 2}
	var logs bytes.Buffer
	tu := newTuner(clk, rt.read, rt.set, slog.New(slog.NewTextHandler(&logs, nil)))
	tu.start()
	defer tu.stop()
	rt.mu.Lock()
	rt.def = 1
	rt.mu.Unlock()
	rt.use(Window)
	clk.Advance(Window)
	if rt.now() != 1 || logs.Len() != 0 {
		t.Fatalf("a raise to a default of one: %d Ps, log %q", rt.now(), logs.String())
	}
	rt.mu.Lock()
	rt.def = 3
	rt.mu.Unlock()
	rt.use(Window)
	clk.Advance(Window)
	if rt.now() != 3 {
		t.Fatalf("the next busy window with a default of 3: %d Ps", rt.now())
	}
	if !strings.Contains(logs.String(), "procs=3") {
		t.Errorf("no log line for the raise: %q", logs.String())
	}
}

// TestTunerSkipsAnUnreadWindow: a window whose CPU time could not be read,
// or went back, decides nothing, and the next window is measured from the
// last good reading.
func TestTunerSkipsAnUnreadWindow(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	rt := &fakeRuntime{def: 2}
	ok := true
	read := func() (time.Duration, bool) {
		d, _ := rt.read()
		return d, ok
	}
	tu := newTuner(clk, read, rt.set, nil)
	tu.start()
	defer tu.stop()
	ok = false
	rt.use(Window) // a whole core, unread
	clk.Advance(Window)
	if rt.now() != 1 {
		t.Fatalf("an unread window changed the Ps to %d", rt.now())
	}
	ok = true
	clk.Advance(Window) // measured over both windows: 0.5 of a core
	if rt.now() != 1 {
		t.Fatalf("a core over two windows (0.5 each) raised to %d", rt.now())
	}
}

// TestApplyLeavesAnOperatorsGOMAXPROCS: with GOMAXPROCS in the environment
// the runtime is left as the variable set it.
func TestApplyLeavesAnOperatorsGOMAXPROCS(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	stop, applied := Apply(func(k string) string {
		if k == "GOMAXPROCS" {
			return "3"
		}
		return ""
	}, nil)
	defer stop()
	if applied || runtime.GOMAXPROCS(0) != before {
		t.Fatalf("applied %v with GOMAXPROCS set; Ps %d, were %d", applied, runtime.GOMAXPROCS(0), before)
	}
}

// TestApplyOnTheRuntime applies the policy to this process: one P at once
// where the default has more, none applied twice, the default back after
// stop; Procs the default throughout; and the tuner's raise sets the
// runtime's default again.
func TestApplyOnTheRuntime(t *testing.T) {
	runtime.SetDefaultGOMAXPROCS()
	def := runtime.GOMAXPROCS(0)
	stop, applied := Apply(func(string) string { return "" }, nil)
	if def == 1 {
		stop()
		if applied {
			t.Fatal("applied with a default of one P")
		}
		return
	}
	if !applied || runtime.GOMAXPROCS(0) != 1 {
		stop()
		t.Fatalf("applied %v, %d Ps; want applied, 1 P", applied, runtime.GOMAXPROCS(0))
	}
	if got := Procs(); got != def {
		t.Errorf("Procs at one P: %d, want the default %d, for pools sized once", got, def)
	}
	if _, again := Apply(func(string) string { return "" }, nil); again {
		t.Error("applied a second time while running")
	}
	stop()
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("after stop: %d Ps, want the default %d", got, def)
	}
	runtime.GOMAXPROCS(1)
	if got := Procs(); got != 1 {
		t.Errorf("Procs without the policy at GOMAXPROCS=1: %d, want 1", got)
	}
	runtime.SetDefaultGOMAXPROCS()

	clk := clock.NewFake(time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC))
	var cpu time.Duration
	tu := newTuner(clk, func() (time.Duration, bool) { return cpu, true }, setRuntime, nil)
	defer tu.stop()
	if !tu.start() || runtime.GOMAXPROCS(0) != 1 {
		t.Fatalf("tuner on the runtime: %d Ps after start", runtime.GOMAXPROCS(0))
	}
	cpu += Window
	clk.Advance(Window)
	if got := runtime.GOMAXPROCS(0); got != def {
		t.Fatalf("after a window of a whole core: %d Ps, want the default %d", got, def)
	}
}

// TestCPUTimeCounts: the reader counts this process's CPU, so that work
// done moves it.
func TestCPUTimeCounts(t *testing.T) {
	start, ok := cpuTime()
	if !ok {
		t.Fatal("cpuTime not read on this system")
	}
	deadline := time.Now().Add(20 * time.Second)
	x := uint64(1)
	for time.Now().Before(deadline) {
		for range 1 << 16 {
			x = x*6364136223846793005 + 1442695040888963407
		}
		if now, _ := cpuTime(); now-start >= 20*time.Millisecond {
			return
		}
	}
	now, _ := cpuTime()
	t.Fatalf("20 s of a busy loop moved the CPU time by %v (x %d)", now-start, x)
}
