package grants_test

import (
	"testing"

	"github.com/airlock-dev/airlock/internal/clock"
)

// TestServiceClockTimers: the service's clock tells which clock its
// timers run on, so that a gateway on it knows when its timers are the
// real clock's (awsgw keeps one timer for a call's two watches then),
// and when they are a manual clock's, which only a test advances.
func TestServiceClockTimers(t *testing.T) {
	real := newHarness(t, harnessOptions{})
	manual := newHarness(t, harnessOptions{Manual: true})
	if !clock.RealTimers(real.Svc.Clock()) {
		t.Error("a service on the real clock: its clock's timers are not reported real")
	}
	if clock.RealTimers(manual.Svc.Clock()) {
		t.Error("a service on a manual clock: its clock's timers are reported real")
	}
}
