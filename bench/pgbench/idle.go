package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// idleResult is the memory a process in the middle holds per idle client
// connection.
type idleResult struct {
	Path        string `json:"path"`
	Connections int    `json:"connections"`
	BeforeKB    int64  `json:"rss_before_kb"`
	AfterKB     int64  `json:"rss_after_kb"`
	// PerConnKB is (after − before) / connections.
	PerConnKB float64 `json:"kb_per_connection"`
	// LaterKB is VmRSS once the connections have been idle for
	// idleLater, past the gateway's threshold for shedding a parked
	// session's sockets (pggw, 5–7.5 s); PerConnLaterKB is
	// (later − before) / connections. The Go runtime gives freed memory
	// back to the system lazily, so this shows only part of what the
	// heap lost.
	LaterKB        int64   `json:"rss_later_kb"`
	PerConnLaterKB float64 `json:"kb_per_connection_later"`
	// The same readings of RssAnon, the process's anonymous memory
	// alone: VmRSS also counts its binary's pages, which the logins' code
	// paths fault in the first time they run (0-0.6 MB over 80 logins,
	// bench/HISTORY.md "Where an idle connection's VmRSS goes"), page cache
	// the kernel can drop, not memory the connections hold.
	AnonBeforeKB       int64   `json:"rss_anon_before_kb"`
	AnonAfterKB        int64   `json:"rss_anon_after_kb"`
	AnonLaterKB        int64   `json:"rss_anon_later_kb"`
	AnonPerConnKB      float64 `json:"anon_kb_per_connection"`
	AnonPerConnLaterKB float64 `json:"anon_kb_per_connection_later"`
	// More is the second batch's size (-idle-more), opened once the later
	// reading was taken; MoreLaterKB is VmRSS idleMoreLater after its last
	// connection opened, and MorePerConnKB (MoreLaterKB − LaterKB) / More:
	// what one more idle connection costs, once the fixed steps (the heap
	// up to its goal, the runtime's first metadata) are behind. The same
	// of RssAnon beside it.
	More              int     `json:"more,omitempty"`
	MoreLaterKB       int64   `json:"rss_more_later_kb,omitempty"`
	MorePerConnKB     float64 `json:"kb_per_more_connection,omitempty"`
	AnonMoreLaterKB   int64   `json:"rss_anon_more_later_kb,omitempty"`
	AnonMorePerConnKB float64 `json:"anon_kb_per_more_connection,omitempty"`
	// GoMoreBytes is, for the gateway (a Go process with /metrics), the
	// growth of each of the Go runtime's memory gauges (benchkit.GoMemory)
	// over the second batch, per connection, read when MoreLaterKB is:
	// where RssAnon's growth went (heap spans in use, stacks, metadata),
	// and by difference what the runtime does not account for.
	GoMoreBytes map[string]float64 `json:"go_bytes_per_more_connection,omitempty"`
	// GCCycles is, for the gateway, the collections from the first
	// reading to the later one: whether the logins' garbage was collected
	// by then, and how often. Its /metrics is read just after each of the
	// two readings, never between an rss reading and the connections it
	// measures; the first scrape's own garbage is in the later readings
	// (as in every reading after it) until a collection.
	GCCycles float64 `json:"gc_cycles,omitempty"`
}

// goMemory reads the Go runtime's memory gauges of a process in the
// middle, or nil where it has none (PgBouncer).
type goMemory func() (map[string]float64, error)

// gcCount reads the collections a process in the middle has run, or is
// nil where it has no /metrics (PgBouncer).
type gcCount func() (float64, error)

// rss reads pid's VmRSS and RssAnon.
func rss(pid int) (total, anon int64, err error) {
	st, err := benchkit.ProcStatus(pid, "VmRSS", "RssAnon")
	if err != nil {
		return 0, 0, err
	}
	return st["VmRSS"], st["RssAnon"], nil
}

// idleLater is how long the idle connections are held before the second
// reading.
const idleLater = 10 * time.Second

// pgxConnect opens one connection and returns once authentication is
// complete and the server has said it is ready for a query.
func pgxConnect(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	// A bare startup: nothing but authentication happens on the connection.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// idleMoreLater is how long the second batch is held before its reading:
// past the gateway's release of its heap's free pages once logins stop,
// which comes at most once a minute (pggw's releaseEvery), so that the
// first batch's release does not hold back the second's and the figure is
// what the connections hold rather than the logins' garbage.
const idleMoreLater = 75 * time.Second

// idleMemory samples pid's VmRSS, opens n connections to e (each fully
// authenticated, then left idle), waits for the process to settle,
// samples again; then, if more > 0, opens more connections and samples
// idleMoreLater after them; and closes them all.
func idleMemory(ctx context.Context, path string, pid int, e pgEnv, n, more int, gm goMemory, gc gcCount) (idleResult, error) {
	res := idleResult{Path: path, Connections: n}
	// One connection first, closed, so that one-time costs (the grant's
	// role, buffers, the first TLS or auth set-up) fall before "before".
	c, err := pgxConnect(ctx, e.dsn())
	if err != nil {
		return res, fmt.Errorf("%s: first connection: %v", path, err)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		c.Close(ctx)
		return res, fmt.Errorf("%s: first query: %v", path, err)
	}
	c.Close(ctx)
	time.Sleep(500 * time.Millisecond)
	if res.BeforeKB, res.AnonBeforeKB, err = rss(pid); err != nil {
		return res, err
	}
	var gc0 float64
	if gc != nil {
		if gc0, err = gc(); err != nil {
			return res, err
		}
	}
	conns := make([]*pgx.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	open := func(k int) error {
		for i := range k {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, err := pgxConnect(cctx, e.dsn())
			cancel()
			if err != nil {
				return fmt.Errorf("%s: idle connection %d of %d: %v", path, len(conns)+1, len(conns)+k-i, err)
			}
			conns = append(conns, c)
		}
		return nil
	}
	if err := open(n); err != nil {
		return res, err
	}
	// Let any per-connection goroutines and buffers come to rest.
	time.Sleep(time.Second)
	if res.AfterKB, res.AnonAfterKB, err = rss(pid); err != nil {
		return res, err
	}
	res.PerConnKB = float64(res.AfterKB-res.BeforeKB) / float64(n)
	res.AnonPerConnKB = float64(res.AnonAfterKB-res.AnonBeforeKB) / float64(n)
	time.Sleep(idleLater - time.Second)
	if res.LaterKB, res.AnonLaterKB, err = rss(pid); err != nil {
		return res, err
	}
	res.PerConnLaterKB = float64(res.LaterKB-res.BeforeKB) / float64(n)
	res.AnonPerConnLaterKB = float64(res.AnonLaterKB-res.AnonBeforeKB) / float64(n)
	if gc != nil {
		gc1, err := gc()
		if err != nil {
			return res, err
		}
		res.GCCycles = gc1 - gc0
	}
	if more == 0 {
		return res, nil
	}
	res.More = more
	var goLater map[string]float64
	if gm != nil {
		// Read just before the batch: the later reading above was taken
		// idleLater after the first batch, and the runtime's gauges, read
		// here, are what the second batch's growth is measured from.
		// (Reading them stops the world briefly, so not between rss
		// readings that a pause could move.)
		if goLater, err = gm(); err != nil {
			return res, err
		}
	}
	if err := open(more); err != nil {
		return res, err
	}
	time.Sleep(idleMoreLater)
	if res.MoreLaterKB, res.AnonMoreLaterKB, err = rss(pid); err != nil {
		return res, err
	}
	if gm != nil {
		goMore, err := gm()
		if err != nil {
			return res, err
		}
		res.GoMoreBytes = make(map[string]float64, len(goMore))
		for k, v := range goMore {
			res.GoMoreBytes[k] = (v - goLater[k]) / float64(more)
		}
	}
	res.MorePerConnKB = float64(res.MoreLaterKB-res.LaterKB) / float64(more)
	res.AnonMorePerConnKB = float64(res.AnonMoreLaterKB-res.AnonLaterKB) / float64(more)
	return res, nil
}

// goMemoryLine prints the Go runtime's growth per connection in KiB: heap
// spans in use, the heap's idle pages kept (idle less released), stacks,
// span structures, and what RssAnon grew beyond the first two and the
// stacks: the runtime's metadata and any memory outside Go's heap, touched
// for the first time (the runtime's sys gauge counts memory mapped, not
// touched, so it does not bound what became resident over the batch;
// bench/HISTORY.md, 2026-12-05 night session).
func goMemoryLine(g map[string]float64, anonKB float64) string {
	kib := func(name string) float64 { return g["go_memstats_"+name+"_bytes"] / 1024 }
	heap, idle, released, stack, mspan := kib("heap_inuse"), kib("heap_idle"), kib("heap_released"), kib("stack_inuse"), kib("mspan_inuse")
	kept := idle - released
	return fmt.Sprintf("heap in use %.2f KiB, idle heap kept %.2f, stacks %.2f, spans %.2f; RssAnon beyond heap and stacks %.2f KiB",
		heap, kept, stack, mspan, anonKB-heap-kept-stack)
}
