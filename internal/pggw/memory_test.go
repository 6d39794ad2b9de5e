package pggw

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
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
	measure := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
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
	t.Logf("idle session cost in the gateway: %d bytes of heap+stack each (%d sessions, %d goroutines each)",
		per, idleConns, (goAfter-goBefore)/idleConns)
	if per > 256<<10 {
		t.Fatalf("an idle session costs %d bytes; expected well under 256 KiB", per)
	}
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
