package pggw

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// idleConns is how many idle sessions the memory test holds open. The
// server's max_connections (100 by default) is shared with the other test
// packages running at the same time, so keep it well below; bench/pgbench
// measures more sessions on a quiet server.
const idleConns = 20

// TestIdleConnectionMemory measures what an idle session costs the
// gateway: heap and goroutine stacks after idleConns sessions are open and
// idle, minus before. The clients run in a child process so that their own
// memory is not counted. Idle sessions park (park.go): with plain
// connections on both sides they hold no goroutine; a TLS upstream
// connection cannot be parked and keeps its TLS state and one goroutine.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	for _, tc := range []struct {
		sslmode    string
		maxPer     int64 // bytes per idle session
		goroutines int   // per idle session
		// maxAlloc bounds the bytes allocated per session start: until
		// a collection, an idle connection costs the process that much
		// memory (bench/pgbench's VmRSS figure). maxAllocRace is the
		// bound under the race detector, which is how CI runs this test:
		// there sync.Pool drops a random quarter of what is put back, so
		// a session start allocates pooled buffers again, about twice as
		// much and less evenly. Measured on 2026-12-03 (load 8-12, 23
		// runs of go test -race -count=N -run TestIdleConnectionMemory,
		// 6 of them beside the auditlog package's -race tests; 5 runs
		// without -race): disable 39-51 KiB under -race (median 43),
		// 19.4-20.2 KiB without; require 125-134 KiB under -race, 100-102
		// KiB without. Each race bound is about a tenth above the
		// highest run, so that it holds on a loaded CI machine. It still
		// catches a regression: with a 20 KiB buffer more per connection
		// (in newConn), disable failed 3 runs of 3 and require 1 of 3;
		// with 12 KiB, disable failed 1 of 2.
		maxAlloc, maxAllocRace int64
	}{
		// bench/pgbench's set-up: no goroutine, a few KiB of state
		// (2.5-3.0 KiB measured on 2026-12-04, 2.5 under -race; 3.1-3.9
		// while a parked session kept its readers, writers and batch
		// state). Again on 2026-12-04 after main's sync-group tracking
		// (c6661cf), load 7-8: 2,468-2,840 bytes in 5 runs, 2,556-2,847
		// in 3 under -race; main itself 3,719-4,155 in 3 runs.
		{"disable", 4 << 10, 0, 22 << 10, 56 << 10},
		// The TLS upstream's state (its record buffers) and its relay
		// goroutine stay; the bound catches a buffer held beyond them.
		{"require", 48 << 10, 1, 128 << 10, 148 << 10},
	} {
		t.Run("upstream sslmode="+tc.sslmode, func(t *testing.T) {
			per, goroutines, alloc := idleSessionCost(t, tc.sslmode, false)
			if per > tc.maxPer {
				t.Errorf("an idle session costs %d bytes, more than %d; does it hold a buffer or a goroutine while idle?", per, tc.maxPer)
			}
			maxAlloc := tc.maxAlloc
			if raceOn { // race_on_test.go
				maxAlloc = tc.maxAllocRace
			}
			if alloc > maxAlloc && os.Getenv("PGGW_IDLE_HEAPPROFILE") == "" { // profiling allocates
				t.Errorf("a session start allocates %d bytes, more than %d (race detector on: %v)", alloc, maxAlloc, raceOn)
			}
			if goroutines > tc.goroutines {
				t.Errorf("an idle session holds %d goroutines, want %d: did it not park?", goroutines, tc.goroutines)
			}
		})
	}
}

// TestIdleConnectionMemoryAfterStatements: a session that ran statements
// (prepared and simple) before it went idle holds no more than one that
// never did, beyond its prepared statement: the buffers and queues its
// statements grew are let go when it parks.
func TestIdleConnectionMemoryAfterStatements(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	per, goroutines, _ := idleSessionCost(t, "disable", true)
	if per > maxIdleAfterStatements {
		t.Errorf("an idle session that ran statements costs %d bytes, more than %d; does it keep its statements' buffers while parked?", per, maxIdleAfterStatements)
	}
	if goroutines > 0 {
		t.Errorf("an idle session holds %d goroutines, want 0: did it not park?", goroutines)
	}
}

// maxIdleAfterStatements bounds TestIdleConnectionMemoryAfterStatements.
// Measured on 2026-12-03 (20 sessions): 3.8-4.5 KiB, 3.6-3.8 under -race,
// as for sessions that ran nothing (3.0-4.5 KiB); 5.9-6.2 KiB when a
// parked session kept its last Bind (whose parameters pinned the buffer
// they were read into) and its batch's queues. On 2026-12-04, with the
// parked loops' readers, writers and batch state pooled and prepared
// statements held by pointer: 2.6-3.1 KiB, 3.0 under -race (4.4-4.7
// before in the same runs). Again after main's sync-group tracking
// (c6661cf: statements keep their query and parameter types, a session
// counts its sync groups), load 7-8: 2,989-3,183 bytes in 5 runs,
// 2,690-3,143 in 3 under -race; main itself 4,661-4,857 in 3 runs. The
// bound leaves about 900 bytes above the highest run (runs of one build
// move by about 500).
const maxIdleAfterStatements = 4 << 10

// idleSessionCost returns the heap and stacks, in bytes, the goroutines per
// idle session and the bytes allocated per session start, with the
// upstream connection's sslmode.
//
// Every package's tests share one PostgreSQL (max_connections 100) under
// `go test ./...`, and idleConns sessions at once can find its slots taken
// for the moment (53300, which the gateway passes on). A login tried again
// would leave its refused start's allocations and session record in the
// figures, so a measurement that met a refusal is thrown away whole (its
// gateway closed with its subtest) and made again, after 1, 2, 4 and 8
// seconds: only a run in which every session got in at once is measured.
func idleSessionCost(t *testing.T, sslmode string, used bool) (per int64, goroutines int, alloc int64) {
	const attempts = 5
	for attempt, pause := 1, time.Second; ; attempt, pause = attempt+1, 2*pause {
		var refused error
		measured := false
		ok := t.Run(fmt.Sprintf("attempt %d", attempt), func(t *testing.T) {
			per, goroutines, alloc, refused = idleSessionCostOnce(t, sslmode, used)
			measured = refused == nil
		})
		if !ok {
			t.FailNow() // the attempt failed: its figures are not a measurement
		}
		if measured {
			return per, goroutines, alloc
		}
		if refused == nil {
			// Skipped (no PostgreSQL): zero figures would pass the bounds.
			t.Skip("not measured: the attempt was skipped")
		}
		if attempt == attempts {
			t.Fatalf("PostgreSQL refused a session (too many connections) in each of %d measurements; last: %v", attempts, refused)
		}
		t.Logf("measurement %d thrown away, a session was refused: %v", attempt, refused)
		time.Sleep(pause) // a backoff for the shared server, not a wait for a timer
	}
}

// idleSessionCostOnce is one measurement of idleSessionCost; when a
// session was refused with 53300 it returns the refusal and no figures.
func idleSessionCostOnce(t *testing.T, sslmode string, used bool) (int64, int, int64, error) {
	if os.Getenv("PGGW_IDLE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	e := newEnv(t, func(o *Options) {
		o.Targets[0].Upstream = withSSLMode(t, o.Targets[0].Upstream, sslmode)
		o.ParkIdleAfter = 5 * time.Millisecond
	})
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	if used {
		// The fake authority keeps every call it records; a real one
		// writes them to the log.
		e.auth.DiscardCalls(true)
	}
	// Live heap objects (HeapAlloc after a collection: HeapInuse counts
	// whole 8 KiB spans, too coarse for a few KiB per session) and stacks.
	var heap, stack, total int64
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap, stack = int64(ms.HeapAlloc)-heap, int64(ms.StackInuse)-stack
		total = int64(ms.TotalAlloc) - total
		return ms.HeapAlloc + ms.StackInuse
	}
	measure()
	writeHeapProfile := func(suffix string) {
		// For finding what an idle session holds: go tool pprof
		// -sample_index=inuse_space -diff_base=NAME.before NAME (parked)
		// or NAME.shed (shed).
		f := os.Getenv("PGGW_IDLE_HEAPPROFILE")
		if f == "" {
			return
		}
		name := f + "." + sslmode
		if used {
			name += ".used"
		}
		if out, err := os.Create(name + suffix); err == nil {
			_ = pprof.Lookup("heap").WriteTo(out, 0)
			out.Close()
		}
	}
	writeHeapProfile(".before")
	goBefore := runtime.NumGoroutine()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGGW_IDLE_URL="+e.url(g, ""), "PGGW_IDLE_N="+strconv.Itoa(idleConns), "PGGW_IDLE_USED="+strconv.FormatBool(used))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	sc := bufio.NewScanner(stdout)
	ready := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "READY") {
			ready = true
			break
		}
		if strings.Contains(sc.Text(), "FAIL") {
			if strings.Contains(sc.Text(), "(SQLSTATE "+codeTooManyConnections+")") {
				return 0, 0, 0, errors.New(strings.TrimPrefix(sc.Text(), "FAIL "))
			}
			t.Fatalf("client helper: %s", sc.Text())
		}
	}
	if !ready {
		t.Fatal("client helper did not get its connections open")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	// Wait for the sessions to park (or not, for a TLS upstream).
	for i := 0; i < 100 && e.gw.park.Len() < 2*idleConns; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	measure()
	writeHeapProfile("")
	goAfter := runtime.NumGoroutine()
	if n := e.backendsOf(g.ID); n != idleConns {
		t.Fatalf("%d upstream backends, want %d", n, idleConns)
	}
	if used {
		// Each session's four statements were recorded (and their results).
		for _, r := range e.auth.Sessions() {
			if n := r.Discarded(); n < 8 {
				t.Fatalf("session %s recorded %d calls, want at least 8: did its statements run?", r.ID, n)
			}
		}
	}
	goroutines := (goAfter - goBefore + idleConns/2) / idleConns
	// The stacks' difference is the whole process's: other tests'
	// goroutines growing or shrinking their stacks meanwhile move it by
	// kilobytes per session (-3276 to +3276 seen), so it counts only when
	// the sessions hold goroutines; a goroutine held where none should be
	// is caught by the goroutine count. Stacks freed since the first
	// snapshot can make the difference negative: a session holds no less
	// than nothing.
	per := heap / idleConns
	if goroutines > 0 {
		per += max(stack, 0) / idleConns
	}
	t.Logf("idle session cost in the gateway: %d bytes of heap+stack each (heap %d, stacks %d; %d sessions, %d goroutines each, %d sockets parked)",
		per, heap/idleConns, stack/idleConns, idleConns, goroutines, e.gw.park.Len())
	// Parked for shedParkedAfter, the sessions' sockets are shed (their
	// net.Conns closed, the descriptors kept bare): what a session idle
	// for longer holds. The bound above is on the parked figure.
	if n := e.gw.parkedSockets(); n == 2*idleConns {
		parked := liveHeap()
		for _, pc := range e.gw.sockets() {
			pc.Shed()
		}
		d := liveHeap() - parked
		writeHeapProfile(".shed")
		t.Logf("shed (idle for %v): %d bytes of heap each (%d sockets shed, %+d bytes each against parked)",
			shedParkedAfter, (heap+d)/idleConns, e.bare(), d/idleConns)
	}
	// What a process's RSS grows by when sessions start is mostly this
	// garbage, until a collection: the heap grows to twice the live heap.
	t.Logf("allocated while the sessions started: %d KiB each (%d bytes)", total/idleConns>>10, total/idleConns)
	floor := idleFloor(t, idleConns)
	t.Logf("for comparison, a Go relay with a goroutine blocked on each side holds at least %d bytes per session (two net.Conns, two goroutines blocked in a read, no buffers)", floor)
	return per, goroutines, total / idleConns, nil
}

// idleFloor measures, in this process, the heap and stacks per session of
// the least a Go relay built like this one holds for an idle session: two
// connected sockets (net.Conn, each with its poll descriptor) and two
// goroutines, each blocked reading one of them without any buffer. The
// other ends are bare socketpair descriptors with no Go object.
func idleFloor(t *testing.T, n int) int64 {
	measure := func() int64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return int64(ms.HeapAlloc + ms.StackInuse)
	}
	var peers []int
	var conns []net.Conn
	var wg sync.WaitGroup
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		for _, fd := range peers {
			syscall.Close(fd)
		}
		wg.Wait()
	}()
	before := measure()
	for range 2 * n {
		fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		f := os.NewFile(uintptr(fds[0]), "")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		peers, conns = append(peers, fds[1]), append(conns, c)
		raw, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Wait for readability, as idleReader does, holding nothing.
			_ = raw.Read(func(fd uintptr) bool {
				var b [1]byte
				_, err := syscall.Read(int(fd), b[:])
				return err != syscall.EAGAIN
			})
		}()
	}
	time.Sleep(100 * time.Millisecond)
	return (measure() - before) / int64(n)
}

// TestMain runs this test binary as TestIdleConnectionMemory's client
// process when it is started with PGGW_IDLE_URL set.
func TestMain(m *testing.M) {
	if url := os.Getenv("PGGW_IDLE_URL"); url != "" {
		os.Exit(idleClients(url))
	}
	os.Exit(m.Run())
}

// idleClients opens PGGW_IDLE_N sessions to url, says READY, and holds them
// until its standard input closes. With PGGW_IDLE_WAIT=true it opens them
// once it has read a first line.
func idleClients(url string) int {
	n, _ := strconv.Atoi(os.Getenv("PGGW_IDLE_N"))
	in := bufio.NewReader(os.Stdin)
	if os.Getenv("PGGW_IDLE_WAIT") == "true" {
		// Until the parent has taken its reading before the sessions.
		_, _ = in.ReadString('\n')
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var conns []*pgconn.PgConn
	for i := 0; i < n; i++ {
		c, err := pgconn.Connect(ctx, url)
		if err != nil {
			fmt.Println("FAIL", err)
			return 1
		}
		conns = append(conns, c)
		if os.Getenv("PGGW_IDLE_USED") == "true" {
			// What an agent's session has done before it idles: a
			// statement through the extended protocol (prepared, bound,
			// executed) and one simple query.
			if _, err := c.Prepare(ctx, "count", "select count(*) from customers where id > $1", nil); err != nil {
				fmt.Println("FAIL", err)
				return 1
			}
			for range 3 {
				if err := c.ExecPrepared(ctx, "count", [][]byte{[]byte("0")}, nil, nil).Read().Err; err != nil {
					fmt.Println("FAIL", err)
					return 1
				}
			}
			if _, err := c.Exec(ctx, "select count(*) from customers").ReadAll(); err != nil {
				fmt.Println("FAIL", err)
				return 1
			}
		}
	}
	fmt.Println("READY")
	_, _ = in.ReadString('\n') // until the parent closes stdin
	for _, c := range conns {
		c.Close(context.Background())
	}
	return 0
}
