package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// phase is one pgbench run on one path.
type phase struct {
	Path  string `json:"path"`
	Mode  string `json:"mode"`
	Round int    `json:"round"`
	// TPS is pgbench's figure without the initial connection time.
	TPS          float64 `json:"tps"`
	Transactions int64   `json:"transactions"`
	LatencyMS    float64 `json:"latency_avg_ms"`
	Seconds      float64 `json:"wall_seconds"`
	// PgbenchCPU is pgbench's own CPU time; MiddleCPU that of the gateway
	// or PgBouncer during the phase (0 directly), in seconds.
	PgbenchCPU float64 `json:"pgbench_cpu_s"`
	MiddleCPU  float64 `json:"middle_cpu_s"`
	// ConnectMS is pgbench's average connection time, with -C (a new
	// connection per transaction).
	ConnectMS float64 `json:"connect_avg_ms,omitempty"`
	// RecordWait is, for the gateway's phases, what the server's /metrics
	// (airlock_log_wait_seconds) counted during the phase: how long its
	// calls waited for their records' durability under this load.
	RecordWait *benchkit.LogWait `json:"record_wait,omitempty"`
	// GCCycles and AllocBytes are, for the gateway's phases, the server's
	// collections and bytes allocated during the phase (go_gc_duration_seconds_count,
	// go_memstats_alloc_bytes_total from its /metrics): counts that hold on
	// a busy machine, where the CPU's figures do not.
	GCCycles   float64 `json:"gc_cycles,omitempty"`
	AllocBytes float64 `json:"alloc_bytes,omitempty"`
	// SlotRetries is how many times a direct phase ran again because
	// PostgreSQL refused its logins for want of connection slots
	// (slots.go): its figures are the last run's.
	SlotRetries int `json:"slot_retries,omitempty"`
	// PerfStat is, for a measured gateway or PgBouncer phase with -stat,
	// perf stat's counts on that process divided by the transactions.
	PerfStat string `json:"perf_stat,omitempty"`
}

// gcCounters are the server's /metrics counters a gateway phase reports.
var gcCounters = []string{"go_gc_duration_seconds_count", "go_memstats_alloc_bytes_total"}

var (
	tpsRe     = regexp.MustCompile(`tps = ([0-9.]+) \((?:without initial connection time|including reconnection times)\)`)
	connectRe = regexp.MustCompile(`average connection time = ([0-9.]+) ms`)
	txRe      = regexp.MustCompile(`number of transactions actually processed: ([0-9]+)`)
	latencyRe = regexp.MustCompile(`latency average = ([0-9.]+) ms`)
)

// load is the pgbench command line the benchmark measures.
type load struct {
	clients, threads, seconds int
	// connect makes every transaction open a connection of its own (-C),
	// as an agent running psql once per query does.
	connect bool
}

// runPgbench runs `pgbench -S` in mode against e for l.seconds and reads
// its figures. middlePID, if not 0, is the process between pgbench and
// PostgreSQL, whose CPU use it measures. A run that fails, or reports
// no transactions, is an error: a failing path must not look fast.
func runPgbench(ctx context.Context, e pgEnv, mode string, l load, middlePID int) (phase, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(l.seconds)*time.Second+60*time.Second)
	defer cancel()
	// -n: no vacuum first; the grant may only select, and the tables are
	// freshly vacuumed by pgbench -i anyway.
	args := []string{"-S", "-n", "-M", mode, "-c", strconv.Itoa(l.clients), "-j", strconv.Itoa(l.threads), "-T", strconv.Itoa(l.seconds)}
	if l.connect {
		args = append(args, "-C")
	}
	cmd := exec.CommandContext(ctx, "pgbench", args...)
	cmd.Env = e.environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var mid0 time.Duration
	if middlePID != 0 {
		mid0, _ = benchkit.CPUTime(middlePID)
	}
	start := time.Now()
	err := cmd.Run()
	p := phase{Mode: mode, Seconds: time.Since(start).Seconds()}
	if middlePID != 0 {
		mid1, _ := benchkit.CPUTime(middlePID)
		p.MiddleCPU = (mid1 - mid0).Seconds()
	}
	if cmd.ProcessState != nil {
		p.PgbenchCPU = (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
	}
	if err != nil {
		return p, fmt.Errorf("pgbench -M %s: %v\n%s", mode, err, tail(out.Bytes()))
	}
	m, n := tpsRe.FindSubmatch(out.Bytes()), txRe.FindSubmatch(out.Bytes())
	if m == nil || n == nil {
		return p, fmt.Errorf("pgbench -M %s: no tps or transaction count in its output:\n%s", mode, tail(out.Bytes()))
	}
	p.TPS, _ = strconv.ParseFloat(string(m[1]), 64)
	p.Transactions, _ = strconv.ParseInt(string(n[1]), 10, 64)
	if l := latencyRe.FindSubmatch(out.Bytes()); l != nil {
		p.LatencyMS, _ = strconv.ParseFloat(string(l[1]), 64)
	}
	if c := connectRe.FindSubmatch(out.Bytes()); c != nil && l.connect {
		p.ConnectMS, _ = strconv.ParseFloat(string(c[1]), 64)
	}
	if p.Transactions == 0 {
		return p, fmt.Errorf("pgbench -M %s processed no transaction:\n%s", mode, tail(out.Bytes()))
	}
	return p, nil
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
