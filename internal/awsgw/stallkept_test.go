package awsgw

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/clock"
)

// stalledConn is the gateway's side of a loopback TCP connection whose
// client never reads, with the send buffers full: a stall watch that
// looks at it twice finds the client stalled. The client's side is
// returned too, to keep it open.
func stalledConn(t testing.TB) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	buf := make([]byte, 64<<10)
	for {
		_ = server.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := server.Write(buf); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}
	_ = server.SetWriteDeadline(time.Time{})
	return server, client
}

// progressKnown reports whether the system tells c's progress (Linux).
func progressKnown(c net.Conn) bool {
	_, _, ok := clientProgress(c)
	return ok
}

// A stall watch's timer is kept for the next call's watch once its own
// ended before the timer ran (timers.go): reset for that call, it must
// look at that call's client alone, and cut it alone when it stalls,
// never the client of the call it served before; a timer whose function
// has run (a watch that looked) is never lent again. Named for the pass
// without the race detector (Makefile), which checks the reuse and that
// a watch kept so allocates nothing.
func TestStallWatchKeptTimerAllocs(t *testing.T) {
	if c, _ := stalledConn(t); !progressKnown(c) {
		t.Skip("this system does not tell a client's progress: answers are not watched")
	}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	timers := &timerPool{clk: clk}
	// The connections first: filling one blocks, and a goroutine that
	// blocks may resume on another P, whose pool does not hold what the
	// last one put back.
	var conns [3]net.Conn
	for i := range conns {
		conns[i], _ = stalledConn(t)
	}
	watches := 0
	watch := func() *clientCut {
		cc := &clientCut{conn: conns[watches], stallTimers: timers}
		watches++
		cc.streamNow()
		return cc
	}

	first := watch()
	kept := first.stallTimer
	first.endIdle() // the answer is done before the watch looked
	if clk.Pending() != 0 {
		t.Fatalf("%d timers pending after the first call's watch ended", clk.Pending())
	}

	second := watch()
	// The race detector makes sync.Pool drop a share of what is put back
	// (race_on_test.go): the reuse is checked without it.
	if second.stallTimer != kept && !raceOn {
		t.Fatal("the second call's watch did not reuse the timer the first one stopped in time")
	}
	clk.Advance(clientIdleTime) // the first look notes the client's progress
	if second.stalled() || !second.looked || first.looked {
		t.Fatalf("after one period: second stalled %v, looked %v; first looked %v", second.stalled(), second.looked, first.looked)
	}
	clk.Advance(clientIdleTime) // no progress since: the client stalled
	if !second.stalled() || !second.killed {
		t.Fatal("the second call's client, stalled, was not cut")
	}
	if first.stalled() || first.killed {
		t.Fatal("the kept timer cut the client of the call it served before")
	}
	second.endIdle() // its timer ran: not kept

	third := watch()
	if third.stallTimer == kept {
		t.Fatal("a timer whose function ran was lent again")
	}
	third.endIdle()
	clk.Advance(time.Hour)
	if third.looked || third.stalled() || first.stalled() {
		t.Fatal("a watch that ended looked or cut")
	}
	if clk.Pending() != 0 {
		t.Fatalf("%d timers pending after every watch ended", clk.Pending())
	}

	if raceOn {
		return
	}
	c, _ := stalledConn(t)
	cc := new(clientCut) // on the heap already, as in a call (exchange)
	if n := testing.AllocsPerRun(100, func() {
		*cc = clientCut{conn: c, stallTimers: timers}
		cc.streamNow()
		cc.endIdle()
	}); n != 0 {
		t.Errorf("a stall watch that ends before it looks allocates %v times, want 0 (its timer kept)", n)
	}
}

// BenchmarkStallWatch is a streamed answer's stall watch, armed and ended
// before it looks, as nearly every answer's is.
func BenchmarkStallWatch(b *testing.B) {
	c, _ := stalledConn(b)
	timers := &timerPool{clk: clock.Real}
	cc := new(clientCut) // on the heap already, as in a call (exchange)
	b.ReportAllocs()
	for b.Loop() {
		*cc = clientCut{conn: c, stallTimers: timers}
		cc.streamNow()
		cc.endIdle()
	}
}

// TestAnswerTimerServesStallWatch: once the upstream answers, the answer
// watch hands its timer, still armed but for no watch, to the call's
// stall watch, which resets it when the answer streams rather than the
// two stopping one timer and taking another (answerWatch.handOff). A
// timer that ran while on offer does nothing, not even give up on the
// answer, and is not taken; nor is one for another pool, or offered to a
// call whose answer is not watched. Every timer is stopped once the
// watches end.
func TestAnswerTimerServesStallWatch(t *testing.T) {
	c, _ := stalledConn(t)
	if !progressKnown(c) {
		t.Skip("this system does not tell a client's progress: answers are not watched")
	}
	clk := clock.NewFake(time.Unix(1_700_000_000, 0))
	pool := &timerPool{clk: clk}
	gaveUp := false
	watch := func() *answerWatch {
		w := &answerWatch{after: upstreamAnswerTime, cancel: cancelFunc(func(error) { gaveUp = true }), timers: pool}
		w.start()
		return w
	}

	t.Run("handed over", func(t *testing.T) {
		w := watch()
		k := w.timer
		cc := &clientCut{conn: c, stallTimers: pool}
		w.handOff(cc)
		if cc.spare != k || w.timer != nil || clk.Pending() != 1 {
			t.Fatalf("after the hand-off: spare %p (the watch's %p), watch's %p, %d pending", cc.spare, k, w.timer, clk.Pending())
		}
		cc.streamNow()
		if cc.stallTimer != k || cc.spare != nil || clk.Pending() != 1 {
			t.Fatalf("the stall watch armed %p, not the answer watch's %p (spare %p, %d pending)", cc.stallTimer, k, cc.spare, clk.Pending())
		}
		clk.Advance(clientIdleTime) // the stall watch's first look
		if !cc.looked || gaveUp {
			t.Fatalf("after a period: looked %v, answer given up %v", cc.looked, gaveUp)
		}
		cc.endIdle()
		if clk.Pending() != 0 {
			t.Fatalf("%d timers pending after the watches ended", clk.Pending())
		}
	})
	t.Run("ran while on offer", func(t *testing.T) {
		w := watch()
		k := w.timer
		cc := &clientCut{conn: c, stallTimers: pool}
		w.handOff(cc)
		clk.Advance(upstreamAnswerTime) // the answer's bound passes: nobody's
		if gaveUp {
			t.Fatal("a timer on offer gave up on an answer that had come")
		}
		cc.streamNow()
		if cc.stallTimer == nil || cc.stallTimer == k {
			t.Fatalf("the stall watch armed %p: a timer that ran (%p) was taken", cc.stallTimer, k)
		}
		cc.endIdle()
		if clk.Pending() != 0 {
			t.Fatalf("%d timers pending after the watches ended", clk.Pending())
		}
	})
	t.Run("not handed over", func(t *testing.T) {
		for _, cc := range []*clientCut{
			{conn: c, stallTimers: &timerPool{clk: clock.Real}}, // another pool
			{stallTimers: pool}, // an answer not watched
		} {
			w := watch()
			w.handOff(cc)
			if cc.spare != nil || clk.Pending() != 0 {
				t.Fatalf("offered %p to a watch that cannot take it; %d pending", cc.spare, clk.Pending())
			}
			cc.streamNow()
			cc.endIdle()
		}
	})
	t.Run("never streamed", func(t *testing.T) {
		w := watch()
		cc := &clientCut{conn: c, stallTimers: pool}
		w.handOff(cc)
		cc.endIdle() // the answer failed before it streamed
		if cc.spare != nil || clk.Pending() != 0 {
			t.Fatalf("spare %p, %d pending after the call ended", cc.spare, clk.Pending())
		}
	})
	if gaveUp {
		t.Error("an answer watch gave up")
	}
}
