package pggw

import (
	"bufio"
	"errors"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestIdleSessionMemoryBound holds what one more idle session costs the
// gateway's heap to a tight bound: the largest part of what bench/pgbench's
// "one more idle connection" measures from outside (RssAnon over a batch
// of 400; issue 15: within 4x PgBouncer's; bench/HISTORY.md, "One more idle
// connection, attributed"). It is measured at the margin, as the benchmark
// does: a first batch of sessions opens (the grant's role, the maps' first
// tables and the pools' first objects come with it), then more batches,
// each started by a client process made before the reading; the heap's
// growth over a batch, once its sessions are parked and again once their
// sockets are shed (as the poller's sweep sheds them), divided by its
// sessions. TestIdleConnectionMemory's figure counts the first batch's
// one-time costs and the test's own objects, so it moves by ±500 bytes
// between runs and its bound is loose; this one moves by about ±200.
//
// It runs without the race detector (make test's pass of the tests named
// …MemoryBound): under it sync.Pool drops what is put back at random and
// the detector allocates on its own account.
func TestIdleSessionMemoryBound(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	if raceOn {
		t.Skip("runs without the race detector (make test's pass of the …MemoryBound tests)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("shedding is Linux only")
	}
	// The second batch's size: large enough that the maps' growth steps
	// and the runtime's own objects (a thread's m, a timer) made during
	// it are a few bytes per session, small enough to leave PostgreSQL's
	// shared slots to the other packages' tests.
	const first, more, batches = 4, 12, 3
	var parked, shed int64
	for attempt, pause := 1, time.Second; ; attempt, pause = attempt+1, 2*pause {
		var refused error
		measured := false
		ok := t.Run("attempt "+strconv.Itoa(attempt), func(t *testing.T) {
			parked, shed, refused = idleMarginOnce(t, first, more, batches)
			measured = refused == nil
		})
		if !ok {
			return // the attempt failed: the failure is its own
		}
		if measured {
			break
		}
		if refused == nil {
			// Skipped (no PostgreSQL): nothing was measured.
			t.Skip("not measured: the attempt was skipped")
		}
		if attempt == 5 {
			t.Fatalf("PostgreSQL refused a session (too many connections) in each of %d measurements; last: %v", attempt, refused)
		}
		t.Logf("measurement %d thrown away, a session was refused: %v", attempt, refused)
		time.Sleep(pause) // a backoff for the shared server
	}
	t.Logf("one more idle session: %d bytes of heap parked, %d once its sockets are shed", parked, shed)
	if shed > maxIdleSessionShed {
		t.Errorf("one more idle session whose sockets are shed holds %d bytes of heap, more than %d: what does it keep while idle?", shed, maxIdleSessionShed)
	}
	if parked > maxIdleSessionParked {
		t.Errorf("one more parked idle session holds %d bytes of heap, more than %d: what does it keep while idle?", parked, maxIdleSessionParked)
	}
}

// The bounds of TestIdleSessionMemoryBound, in bytes of heap per session
// (plain upstream, the tests' fake recorder). Measured on 2026-12-06 (load
// average 12-13 from other work), 14 runs: shed 796-1,174, parked
// 1,404-1,782 (parked is shed plus Go's objects for the two sockets, 608).
// Each bound is about 360-390 bytes above the highest run: with 1 KiB more
// held per session (a buffer kept in conn) the test failed 4 runs of 4
// (shed 1,945-2,110); with 512 bytes it passed 4 of 4 (1,380-1,500).
//
// 2026-12-06 (04:20-04:30 UTC, load 7-8 from other work): conn took in its
// relayState, cancel key and client socket's netpark.Conn, and shed 16
// bytes (TestIdleSessionStructSizes: 496 bytes in four objects, 480 in
// one; a heap profile of 36 sessions, MemProfileRate 1, agrees). 8 runs
// alternating with the build before: shed 790-1,030 against 776-1,005,
// parked 1,398-1,638 against 1,384-1,613; the runs' spread hides 16
// bytes, so the bounds came down by exactly those: bounds set from these
// runs' highest would sit below the 1,174 and 1,782 seen above.
const (
	maxIdleSessionShed   = 1536 - 16
	maxIdleSessionParked = 2176 - 16
)

// idleMarginOnce opens first sessions, then more, all idle, and returns
// the heap per session the second batch added while parked and once shed;
// or the refusal that met a session (PostgreSQL's too many connections),
// with no figures.
func idleMarginOnce(t *testing.T, first, more, batches int) (parked, shed int64, refused error) {
	e := newEnv(t, func(o *Options) { o.ParkIdleAfter = 5 * time.Millisecond })
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	url := e.url(g, "")
	// start starts a client process that will open n sessions, and
	// returns what tells it to (open).
	start := func(n int) (open func(total int) error) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PGGW_IDLE_URL="+url, "PGGW_IDLE_N="+strconv.Itoa(n), "PGGW_IDLE_USED=false", "PGGW_IDLE_WAIT=true")
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
		sc := bufio.NewScanner(stdout)
		// open lets the client open its sessions and waits until every
		// session's sockets are parked (total, with the earlier ones).
		return func(total int) error {
			if _, err := io.WriteString(stdin, "open\n"); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				line := sc.Text()
				if strings.Contains(line, "READY") {
					// The helper writes nothing more until its stdin closes.
					for i := 0; i < 250 && e.gw.parkedSockets() < 2*total; i++ {
						time.Sleep(20 * time.Millisecond)
					}
					if p := e.gw.parkedSockets(); p != 2*total {
						t.Fatalf("%d sockets parked, want %d", p, 2*total)
					}
					return nil
				}
				if strings.Contains(line, "FAIL") {
					if strings.Contains(line, "(SQLSTATE "+codeTooManyConnections+")") {
						return errors.New(strings.TrimPrefix(line, "FAIL "))
					}
					t.Fatalf("client helper: %s", line)
				}
			}
			t.Fatal("client helper did not get its connections open")
			return nil
		}
	}
	if err := start(first)(first); err != nil {
		return 0, 0, err
	}
	e.shed(2 * first)
	// Each batch's figure is an upper bound of what its sessions hold:
	// whatever else the process kept meanwhile (a new thread's runtime
	// state, a map's table grown for the sessions to come) is counted in
	// it. The least over the batches is the closest.
	parked, shed = math.MaxInt64, math.MaxInt64
	total := first
	for range batches {
		// The client process is started before the reading, so that
		// only its sessions count, not this process's objects for it.
		open := start(more)
		before := liveHeap()
		goBefore := runtime.NumGoroutine()
		total += more
		if err := open(total); err != nil {
			return 0, 0, err
		}
		parked = min(parked, (liveHeap()-before)/int64(more))
		if n := runtime.NumGoroutine() - goBefore; n > 0 {
			t.Errorf("%d more goroutines over %d idle sessions, want none: did they not park?", n, more)
		}
		e.shed(2 * total)
		shed = min(shed, (liveHeap()-before)/int64(more))
	}
	return parked, shed, nil
}

// liveHeap returns the heap's live bytes: HeapAlloc after two collections
// (the first one's finalizers and the pools' victim caches are gone after
// the second).
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
