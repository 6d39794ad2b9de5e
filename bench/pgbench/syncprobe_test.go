package main

import (
	"math"
	"testing"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

func TestCeilingFor(t *testing.T) {
	// 8 clients, direct 0.16 ms at 50,000 tps, PgBouncer 0.25 ms, a 100 µs
	// durable write: 8 / 0.35 ms and 8 / 0.26 ms.
	c := ceilingFor(8, 50000, 0.16, 0.25, benchkit.SyncProbe{P50us: 100})
	for _, tc := range []struct {
		name      string
		got, want float64
	}{
		{"tps", c.TPS, 8 / 0.35e-3},
		{"ratio", c.Ratio, 8 / 0.35e-3 / 50000},
		{"free relay tps", c.FreeRelayTPS, 8 / 0.26e-3},
		{"free relay ratio", c.FreeRelayRatio, 8 / 0.26e-3 / 50000},
	} {
		if math.Abs(tc.got-tc.want) > 1e-6*tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if z := ceilingFor(8, 0, 0.16, 0.25, benchkit.SyncProbe{P50us: 100}); z.Ratio != 0 || z.FreeRelayRatio != 0 {
		t.Errorf("with no direct figure the ratios must stay 0, got %+v", z)
	}
}
