package main

import (
	"strings"
	"testing"
)

// The calls the review must count are pgbench's transactions plus its
// start-up queries and the idle phase's SELECT 1: the morning's
// 137,033 recorded calls for 137,021 transactions over 6 runs with
// -idle 0, and 4,943 for 4,934 over 4 runs with the idle phase, are
// exactly what the benchmark sent; one fewer is a lost call.
func TestGatewayCalls(t *testing.T) {
	for _, tc := range []struct {
		c     gatewayCalls
		total int64
	}{
		{gatewayCalls{Transactions: 137021, Runs: 6}, 137033},
		{gatewayCalls{Transactions: 4934, Runs: 4, IdleQueries: 1}, 4943},
	} {
		if got := tc.c.total(); got != tc.total {
			t.Errorf("%+v: total %d, want %d", tc.c, got, tc.total)
		}
		if s := tc.c.explain(float64(tc.total)); strings.Contains(s, "more") {
			t.Errorf("%+v: %q names a surplus at the exact count", tc.c, s)
		}
		if s := tc.c.explain(float64(tc.total + 3)); !strings.Contains(s, "counts 3 more") {
			t.Errorf("%+v: %q does not name the surplus", tc.c, s)
		}
	}
}
