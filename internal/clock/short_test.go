package clock

import (
	"sort"
	"testing"
	"time"
)

func TestAfterShortRunsAndStops(t *testing.T) {
	for _, c := range []Clock{Real, Func(time.Now)} {
		fired := make(chan time.Duration, 1)
		start := time.Now()
		tm := AfterShort(c, 300*time.Microsecond, func() { fired <- time.Since(start) })
		select {
		case took := <-fired:
			if took < 300*time.Microsecond {
				t.Fatalf("%T: fired after %v, before its delay", c, took)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%T: never fired", c)
		}
		if tm.Stop() {
			t.Fatalf("%T: Stop after firing reported that it stopped the timer", c)
		}

		ran := make(chan struct{}, 1)
		tm = AfterShort(c, 2*time.Millisecond, func() { ran <- struct{}{} })
		if !tm.Stop() || tm.Stop() {
			t.Fatalf("%T: Stop: want true then false", c)
		}
		// The sleep goes on to its end; the function must not run after it.
		time.Sleep(20 * time.Millisecond)
		select {
		case <-ran:
			t.Fatalf("%T: a stopped timer ran", c)
		default:
		}
	}
}

// A Fake's timers stay the Fake's: they run from Advance, never from a
// sleep, whatever the delay.
func TestAfterShortFakeUsesTheFake(t *testing.T) {
	c := NewFake(time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC))
	ran := false
	AfterShort(c, 200*time.Microsecond, func() { ran = true })
	if c.Pending() != 1 {
		t.Fatalf("the Fake holds %d timers, want 1", c.Pending())
	}
	c.Advance(199 * time.Microsecond)
	if ran {
		t.Fatal("ran before its deadline")
	}
	c.Advance(time.Microsecond)
	if !ran {
		t.Fatal("did not run at its deadline")
	}
}

// BenchmarkShortTimer measures how late a 200 µs timer fires in an
// otherwise idle process, armed as a runtime timer (time.AfterFunc) and
// with AfterShort: the median and 90th percentile lateness, in µs. On
// Linux the runtime timer waits in epoll_wait, whose timeout is in whole
// milliseconds, so it is about 800 µs late; AfterShort's nanosleep is late
// by the kernel's timer slack (50 µs by default) and a wake-up.
func BenchmarkShortTimer(b *testing.B) {
	const d = 200 * time.Microsecond
	for _, tc := range []struct {
		name string
		arm  func(func()) Timer
	}{
		{"runtime", func(f func()) Timer { return Real.AfterFunc(d, f) }},
		{"short", func(f func()) Timer { return AfterShort(Real, d, f) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			late := make([]time.Duration, 0, b.N)
			fired := make(chan struct{})
			for range b.N {
				start := time.Now()
				tc.arm(func() { fired <- struct{}{} })
				<-fired
				late = append(late, time.Since(start)-d)
			}
			sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
			b.ReportMetric(float64(late[len(late)/2].Microseconds()), "p50-late-µs")
			b.ReportMetric(float64(late[len(late)*9/10].Microseconds()), "p90-late-µs")
		})
	}
}
