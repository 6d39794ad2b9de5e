package clock

import (
	"slices"
	"testing"
	"time"
)

func TestFakeRunsDueTimersInOrder(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	var got []string
	var at []time.Time
	c.AfterFunc(3*time.Second, func() { got = append(got, "c"); at = append(at, c.Now()) })
	c.AfterFunc(time.Second, func() {
		got = append(got, "a")
		at = append(at, c.Now())
		// A timer armed by a due function runs in the same Advance if it is due.
		c.AfterFunc(time.Second, func() { got = append(got, "b"); at = append(at, c.Now()) })
	})
	stopped := c.AfterFunc(2*time.Second, func() { got = append(got, "stopped") })
	if !stopped.Stop() || stopped.Stop() {
		t.Fatal("Stop: want true then false")
	}
	c.Advance(2500 * time.Millisecond)
	if !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("after 2.5s ran %v", got)
	}
	if !at[0].Equal(t0.Add(time.Second)) || !at[1].Equal(t0.Add(2*time.Second)) {
		t.Fatalf("functions read %v", at)
	}
	if !c.Now().Equal(t0.Add(2500 * time.Millisecond)) {
		t.Fatalf("Now %v", c.Now())
	}
	if c.Pending() != 1 {
		t.Fatalf("pending %d", c.Pending())
	}
	c.Advance(time.Second)
	if !slices.Equal(got, []string{"a", "b", "c"}) || c.Pending() != 0 {
		t.Fatalf("ran %v, pending %d", got, c.Pending())
	}
}

func TestFakeSetBackwardsRunsNothing(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	ran := false
	c.AfterFunc(time.Second, func() { ran = true })
	c.Set(t0.Add(-time.Hour))
	if ran || !c.Now().Equal(t0.Add(-time.Hour)) {
		t.Fatalf("ran %v now %v", ran, c.Now())
	}
}

func TestRealAfterFunc(t *testing.T) {
	done := make(chan struct{})
	Real.AfterFunc(time.Millisecond, func() { close(done) })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the real timer did not fire")
	}
	if d := time.Since(Real.Now()); d < 0 || d > time.Minute {
		t.Fatalf("Real.Now is %v off", d)
	}
}

// TestFakeTimerReset: a fake timer armed again with Reset runs once more,
// d after the clock's Now, as a time.Timer does, and Reset reports whether
// it was still armed.
func TestFakeTimerReset(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	c := NewFake(t0)
	var at []time.Time
	tm := c.AfterFunc(time.Second, func() { at = append(at, c.Now()) })
	r, ok := tm.(interface{ Reset(time.Duration) bool })
	if !ok {
		t.Fatal("the fake's timer has no Reset")
	}
	if !r.Reset(2 * time.Second) { // still armed: moved, not doubled
		t.Fatal("Reset of an armed timer reported false")
	}
	c.Advance(1500 * time.Millisecond)
	if len(at) != 0 {
		t.Fatalf("ran at %v, before its reset deadline", at)
	}
	c.Advance(time.Second)
	if len(at) != 1 || !at[0].Equal(t0.Add(2*time.Second)) || c.Pending() != 0 {
		t.Fatalf("ran at %v, pending %d", at, c.Pending())
	}
	if r.Reset(time.Second) {
		t.Fatal("Reset of a fired timer reported true")
	}
	c.Advance(time.Second)
	if len(at) != 2 || !at[1].Equal(t0.Add(3500*time.Millisecond)) {
		t.Fatalf("ran at %v", at)
	}
}

// onTimers is a clock whose timers are another's.
type onTimers struct {
	Clock
	timers Clock
}

func (c onTimers) Timers() Clock { return c.timers }

func TestRealTimers(t *testing.T) {
	fake := NewFake(time.Unix(0, 0))
	for _, tc := range []struct {
		name string
		c    Clock
		want bool
	}{
		{"Real", Real, true},
		{"Func", Func(time.Now), true},
		{"Fake", fake, false},
		{"on Real", onTimers{Clock: fake, timers: Real}, true},
		{"on a Func on Real", onTimers{Clock: fake, timers: onTimers{Clock: fake, timers: Func(time.Now)}}, true},
		{"on Fake", onTimers{Clock: Real, timers: fake}, false},
		{"nil", nil, false},
	} {
		if got := RealTimers(tc.c); got != tc.want {
			t.Errorf("%s: RealTimers = %v, want %v", tc.name, got, tc.want)
		}
	}
}
