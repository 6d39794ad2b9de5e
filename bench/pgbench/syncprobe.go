package main

import "github.com/airlock-dev/airlock/bench/internal/benchkit"

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
func ceilingFor(clients int, directTPS, directMS, bouncerMS float64, p benchkit.SyncProbe) ceiling {
	w := p.P50us / 1e3
	c := ceiling{TPS: float64(clients) / (bouncerMS + w) * 1e3, FreeRelayTPS: float64(clients) / (directMS + w) * 1e3}
	if directTPS > 0 {
		c.Ratio, c.FreeRelayRatio = c.TPS/directTPS, c.FreeRelayTPS/directTPS
	}
	return c
}
