package awsgw

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// countingClock is the real clock, counting its reads. watching hears
// of each timer longer than an answer's bound: a session's watch of its
// grant's expiry, which reads the clock on the watch's own goroutine as
// the session starts.
type countingClock struct {
	clock.Clock
	reads    atomic.Int64
	watching chan struct{}
}

func (c *countingClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	if d > upstreamAnswerTime {
		select {
		case c.watching <- struct{}{}:
		default:
		}
	}
	return c.Clock.AfterFunc(d, f)
}

func (c *countingClock) Now() time.Time {
	c.reads.Add(1)
	return c.Clock.Now()
}

// gatewayClockReadsMax is how many times a GET through the handler reads
// the gateway's clock: once in the verifier, for the signature's time
// (which the call's authentication reuses for the grant's life: it read
// it again before), and once in inScope, before the call is forwarded.
const gatewayClockReadsMax = 2

// TestGatewayClockReads: a GET reads the gateway's clock no more than
// gatewayClockReadsMax times. Each read of the wall clock is a vDSO call
// (some 120 ns on a kvm-clock guest, bench/HISTORY.md).
func TestGatewayClockReads(t *testing.T) {
	clk := &countingClock{Clock: clock.Real, watching: make(chan struct{}, 1)}
	serve := handlerBenchOn(t, clk, nil, false, 1<<10, "http://upstream.test", &memUpstream{body: make([]byte, 1<<10)}, func() int64 { return 0 })
	serve()        // the session's start reads it too: once per session
	<-clk.watching // and its watch, once, on a goroutine of its own
	const calls = 10
	clk.reads.Store(0)
	for range calls {
		serve()
	}
	if n := clk.reads.Load(); n > calls*gatewayClockReadsMax {
		t.Errorf("%d GETs read the gateway's clock %d times, want at most %d each", calls, n, gatewayClockReadsMax)
	} else {
		t.Logf("%d GETs read the gateway's clock %d times", calls, n)
	}
}
