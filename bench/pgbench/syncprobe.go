package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// syncProbe is the latency of one durable write on the filesystem that
// holds the gateway's journal, measured the way the journal writes: a
// small pwrite into a preallocated, already-synced file, then fdatasync.
//
// It is what sets the ceiling below: the issue requires each statement's
// record to be durable before the statement is forwarded, and pgbench -S
// has one statement in flight per client, so every transaction through
// any such gateway waits for at least one durable write, however writes
// are grouped.
type syncProbe struct {
	Writes int     `json:"writes"`
	P50us  float64 `json:"p50_us"`
	P90us  float64 `json:"p90_us"`
	// CPUus is this process's CPU time per write (user and system).
	CPUus float64 `json:"cpu_us_per_write"`
}

// probeSync makes n durable writes of 512 bytes in dir and reports their
// latency.
func probeSync(r *benchkit.Runner, dir string, n int) syncProbe {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		r.Fatal(err)
	}
	path := filepath.Join(dir, "sync-probe")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_EXCL, 0o600)
	if err != nil {
		r.Fatalf("sync probe: %v", err)
	}
	defer os.Remove(path)
	defer f.Close()
	// Zeros written and synced first, as the journal preallocates its
	// segments: the probe's writes then change no file metadata.
	if _, err := f.WriteAt(make([]byte, n*512), 0); err != nil {
		r.Fatalf("sync probe: %v", err)
	}
	if err := f.Sync(); err != nil {
		r.Fatalf("sync probe: %v", err)
	}
	rec := make([]byte, 512)
	for i := range rec {
		rec[i] = byte(i)
	}
	lat := make([]float64, 0, n)
	cpu0 := benchkit.SelfCPU()
	for i := range n {
		start := time.Now()
		if _, err := f.WriteAt(rec, int64(i)*512); err != nil {
			r.Fatalf("sync probe: %v", err)
		}
		if err := fdatasync(f); err != nil {
			r.Fatalf("sync probe: %v", err)
		}
		lat = append(lat, float64(time.Since(start).Nanoseconds())/1e3)
	}
	cpu := benchkit.SelfCPU() - cpu0
	slices.Sort(lat)
	return syncProbe{Writes: n, P50us: lat[n/2], P90us: lat[n*9/10], CPUus: float64(cpu.Nanoseconds()) / 1e3 / float64(n)}
}

// ceiling is the most a gateway could reach in one mode if its relay
// were exactly as fast as PgBouncer's and it added nothing but one
// durable write (at the probe's median latency) per statement: pgbench's
// clients each wait for their statement, so tps ≤ clients / (PgBouncer's
// latency + the write's). With the direct latency instead, it is the
// ceiling of a relay that costs nothing at all.
type ceiling struct {
	// TPS and Ratio assume PgBouncer's relay latency.
	TPS   float64 `json:"tps"`
	Ratio float64 `json:"ratio_to_direct"`
	// FreeRelayTPS and FreeRelayRatio assume the direct path's latency.
	FreeRelayTPS   float64 `json:"free_relay_tps"`
	FreeRelayRatio float64 `json:"free_relay_ratio_to_direct"`
}

// ceilingFor computes the ceiling from the median latencies (ms) pgbench
// reported for PgBouncer and for the direct path.
func ceilingFor(clients int, directTPS, directMS, bouncerMS float64, p syncProbe) ceiling {
	w := p.P50us / 1e3
	c := ceiling{TPS: float64(clients) / (bouncerMS + w) * 1e3, FreeRelayTPS: float64(clients) / (directMS + w) * 1e3}
	if directTPS > 0 {
		c.Ratio, c.FreeRelayRatio = c.TPS/directTPS, c.FreeRelayTPS/directTPS
	}
	return c
}

func (p syncProbe) String() string {
	return fmt.Sprintf("%d writes: p50 %.0f µs, p90 %.0f µs, %.0f µs CPU each", p.Writes, p.P50us, p.P90us, p.CPUus)
}
