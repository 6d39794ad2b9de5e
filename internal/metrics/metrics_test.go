package metrics

import (
	"io"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/internal/auditlog"
)

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	w := httptest.NewRecorder()
	m.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(w.Body)
	if w.Code != 200 {
		t.Fatalf("scrape: %d %s", w.Code, b)
	}
	return string(b)
}

func TestObserveBatch(t *testing.T) {
	m := New()
	var size int64 = 41
	m.LogSize(func() int64 { return size })
	m.ObserveBatch(auditlog.BatchStats{Ops: 3, Write: 150 * time.Microsecond,
		Waits: []time.Duration{120 * time.Microsecond, 180 * time.Microsecond, 2 * time.Millisecond}})
	m.ObserveBatch(auditlog.BatchStats{Ops: 1, Write: time.Millisecond, Waits: []time.Duration{time.Millisecond}, Failed: true})
	size = 44
	body := scrape(t, m)
	for _, want := range []string{
		"airlock_log_batches_total 2",
		"airlock_log_failed_batches_total 1",
		"airlock_log_wait_seconds_count 4",
		`airlock_log_wait_seconds_bucket{le="0.0002"} 2`, // 120 and 180 µs
		`airlock_log_wait_seconds_bucket{le="0.001"} 3`,
		"airlock_log_batch_calls_sum 4",
		"airlock_log_batch_write_seconds_count 2",
		"airlock_log_entries 44",
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

// The gateways' counts, by gateway; a statement the upstream refused for
// lack of privilege under outcome "refused"; a gateway this package does
// not know is counted as "other", never under a label of its own.
func TestGatewayObserver(t *testing.T) {
	m := New()
	m.SessionStarted("postgres")
	m.SessionStarted("postgres")
	m.SessionEnded("postgres")
	m.CallRecorded("postgres", true)
	m.CallRecorded("postgres", false)
	m.CallRecorded("aws", true)
	m.CallRefused("postgres")
	m.Rejected("aws")
	m.CallRecorded("\x1b[31mssh", true)
	body := scrape(t, m)
	for _, want := range []string{
		`airlock_gateway_sessions_started_total{gateway="postgres"} 2`,
		`airlock_gateway_sessions_open{gateway="postgres"} 1`,
		`airlock_gateway_calls_total{gateway="postgres",outcome="allowed"} 1`,
		`airlock_gateway_calls_total{gateway="postgres",outcome="denied"} 1`,
		`airlock_gateway_calls_total{gateway="postgres",outcome="refused"} 1`,
		`airlock_gateway_calls_total{gateway="aws",outcome="allowed"} 1`,
		`airlock_gateway_rejected_total{gateway="aws"} 1`,
		`airlock_gateway_calls_total{gateway="other",outcome="allowed"} 1`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("scrape lacks %q", want)
		}
	}
	if strings.Contains(body, "ssh") {
		t.Error("an unknown gateway got a label of its own")
	}
}

// TestScrapeServesTheRuntimePolicies: the scrape serves the P count and
// the GC percent in force, which serve's runtime policies (internal/
// procpolicy, internal/gcpolicy) change while it runs; README's "CPU and
// GOMAXPROCS" points operators at them.
func TestScrapeServesTheRuntimePolicies(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	out := scrape(t, New())
	for _, want := range []string{
		"\ngo_sched_gomaxprocs_threads " + strconv.Itoa(procs) + "\n",
		"\ngo_gc_gogc_percent ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the scrape has no %q", strings.TrimSpace(want))
		}
	}
}
