package clock

import (
	"runtime/metrics"
	"testing"
	"time"
)

// A WakeTimer fires once per Arm, after its delay, on the real clock and on
// a Fake; a re-Arm replaces the pending firing and Stop cancels it.
func TestWakeTimerFiresOncePerArm(t *testing.T) {
	for _, c := range []Clock{Real, Func(time.Now)} {
		w := NewWakeTimer(c)
		for range 3 {
			start := time.Now()
			select {
			case <-w.Arm(300 * time.Microsecond):
				if took := time.Since(start); took < 300*time.Microsecond {
					t.Fatalf("%T: fired after %v, before its delay", c, took)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("%T: never fired", c)
			}
		}
		// Re-armed before it fires: only the later deadline fires.
		w.Arm(time.Millisecond)
		ch := w.Arm(time.Hour)
		w2 := NewWakeTimer(c)
		select {
		case <-ch:
			t.Fatalf("%T: the replaced deadline fired", c)
		case <-w2.Arm(20 * time.Millisecond):
		}
		w.Stop()
		w2.Stop()
	}

	f := NewFake(time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC))
	w := NewWakeTimer(f)
	old := w.Arm(time.Second)
	ch := w.Arm(2 * time.Second)
	f.Advance(time.Second)
	select {
	case <-old:
		t.Fatal("fake: the replaced deadline fired")
	case <-ch:
		t.Fatal("fake: fired before its deadline")
	default:
	}
	f.Advance(time.Second)
	select {
	case <-ch:
	default:
		t.Fatal("fake: not fired at its deadline")
	}
	w.Arm(time.Second)
	w.Stop()
	if f.Pending() != 0 {
		t.Fatalf("fake: %d timers pending after Stop", f.Pending())
	}
}

// Waiting on a real WakeTimer starts no goroutine per firing (an AfterFunc
// does: the runtime runs its function in a goroutine of its own), and
// re-arming it allocates nothing.
func TestWakeTimerRearmAllocs(t *testing.T) {
	if raceOn {
		t.Skip("allocation counts are not the program's under the race detector")
	}
	w := NewWakeTimer(Real)
	defer w.Stop()
	fire := func() { <-w.Arm(time.Microsecond) }
	fire() // the runtime timer, once
	const n = 200
	created := goroutinesCreated()
	for range n {
		fire()
	}
	if got := goroutinesCreated() - created; got > n/10 {
		t.Fatalf("%d goroutines started for %d firings", got, n)
	}
	if a := testing.AllocsPerRun(100, func() { w.Arm(time.Hour) }); a != 0 {
		t.Fatalf("re-arming allocated %v times", a)
	}
}

// goroutinesCreated is the process's count of goroutines started so far.
func goroutinesCreated() uint64 {
	s := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
