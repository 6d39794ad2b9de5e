package pggw

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
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
// memory is not counted.
func TestIdleConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("memory measurement skipped in -short mode")
	}
	e := newEnv(t, nil)
	g := e.grant(time.Hour, "pg:select %s.public.customers")
	var heap, stack int64
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		heap, stack = int64(ms.HeapInuse)-heap, int64(ms.StackInuse)-stack
		return ms.HeapInuse + ms.StackInuse
	}
	before := measure()
	goBefore := runtime.NumGoroutine()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PGGW_IDLE_URL="+e.url(g, ""), "PGGW_IDLE_N="+strconv.Itoa(idleConns))
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
	time.Sleep(200 * time.Millisecond)
	after := measure()
	goAfter := runtime.NumGoroutine()
	if n := e.backendsOf(g.ID); n != idleConns {
		t.Fatalf("%d upstream backends, want %d", n, idleConns)
	}
	per := (int64(after) - int64(before)) / idleConns
	t.Logf("idle session cost in the gateway: %d bytes of heap+stack each (heap %d, stacks %d; %d sessions, %d goroutines each)",
		per, heap/idleConns, stack/idleConns, idleConns, (goAfter-goBefore)/idleConns)
	floor := idleFloor(t, idleConns)
	t.Logf("the floor for any Go relay with a goroutine blocked on each side: %d bytes per session (two net.Conns, two goroutines blocked in a read, no buffers)", floor)
	// What a session holds beyond that floor: its own state (conn,
	// relayState, the recording session) but no read or write buffers,
	// which are 8 KiB each (before idleReader: about 28 KB beyond it).
	if per-floor > 16<<10 {
		t.Fatalf("an idle session costs %d bytes, %d beyond the floor; does it hold a buffer while idle?", per, per-floor)
	}
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
		return int64(ms.HeapInuse + ms.StackInuse)
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
// until its standard input closes.
func idleClients(url string) int {
	n, _ := strconv.Atoi(os.Getenv("PGGW_IDLE_N"))
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
	}
	fmt.Println("READY")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	for _, c := range conns {
		c.Close(context.Background())
	}
	return 0
}
