package benchkit

import (
	"math"
	"strings"
	"testing"
)

const scrapeA = `# HELP airlock_log_wait_seconds x
# TYPE airlock_log_wait_seconds histogram
airlock_log_wait_seconds_bucket{le="0.0001"} 1
airlock_log_wait_seconds_bucket{le="0.0002"} 3
airlock_log_wait_seconds_bucket{le="0.0005"} 4
airlock_log_wait_seconds_bucket{le="+Inf"} 4
airlock_log_wait_seconds_sum 0.0008
airlock_log_wait_seconds_count 4
airlock_log_batches_total 2
`

const scrapeB = `airlock_log_wait_seconds_bucket{le="0.0001"} 1
airlock_log_wait_seconds_bucket{le="0.0002"} 3
airlock_log_wait_seconds_bucket{le="0.0005"} 10
airlock_log_wait_seconds_bucket{le="+Inf"} 14
airlock_log_wait_seconds_sum 0.0108
airlock_log_wait_seconds_count 14
`

func TestLogWait(t *testing.T) {
	a, err := ParseLogWait(strings.NewReader(scrapeA))
	if err != nil {
		t.Fatal(err)
	}
	if a.Count != 4 || math.Abs(a.MeanUS()-200) > 1e-6 || a.QuantileUS(0.5) != 200 || a.QuantileUS(1) != 500 {
		t.Fatalf("a: %+v, mean %v, p50 %v, p100 %v", a, a.MeanUS(), a.QuantileUS(0.5), a.QuantileUS(1))
	}
	b, err := ParseLogWait(strings.NewReader(scrapeB))
	if err != nil {
		t.Fatal(err)
	}
	d := b.Sub(a) // 10 calls: 6 within 500 µs, 4 beyond
	if d.Count != 10 || math.Abs(d.MeanUS()-1000) > 1e-6 || d.QuantileUS(0.5) != 500 || !math.IsInf(d.QuantileUS(0.9), 1) {
		t.Fatalf("delta: %+v, mean %v, p50 %v, p90 %v", d, d.MeanUS(), d.QuantileUS(0.5), d.QuantileUS(0.9))
	}
	if _, err := ParseLogWait(strings.NewReader("go_goroutines 3\n")); err == nil {
		t.Fatal("a scrape without the histogram parsed")
	}
}
