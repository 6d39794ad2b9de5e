package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// paths are the three ways pgbench reaches the database.
var paths = []string{"direct", "pgbouncer", "gateway"}

// modeSummary compares the paths for one protocol mode.
type modeSummary struct {
	Mode string `json:"mode"`
	// TPS is the median tps of each path over the rounds.
	TPS map[string]float64 `json:"median_tps"`
	// Ratio is each path's median tps / direct's median tps.
	Ratio map[string]float64 `json:"ratio_to_direct"`
	// MiddleCPUus is the median CPU time per transaction of the process
	// in the middle (PgBouncer or the gateway), in µs.
	MiddleCPUus map[string]float64 `json:"middle_cpu_us_per_tx"`
	// LatencyMS is the median of pgbench's average latency per path.
	LatencyMS map[string]float64 `json:"median_latency_ms"`
	// Met is the old target: gateway ratio ≥ PgBouncer ratio.
	Met bool `json:"gateway_at_least_pgbouncer"`
	// TPSPerPgBouncer is the gateway's median tps over PgBouncer's, and
	// CPUPerPgBouncer its CPU per transaction over PgBouncer's: issue 15's
	// floors are ≥ 0.75 and ≤ 2.5 (goals 1.0 and 1.5).
	TPSPerPgBouncer float64 `json:"gateway_tps_per_pgbouncer"`
	CPUPerPgBouncer float64 `json:"gateway_cpu_per_pgbouncer"`
	// Ceiling is what one durable write per statement leaves reachable
	// (see ceiling); absent without a sync probe.
	Ceiling *ceiling `json:"durable_write_ceiling,omitempty"`
}

// report is what bench/out/pgbench.json holds.
type report struct {
	Clients      int           `json:"clients"`
	Threads      int           `json:"threads"`
	Scale        int           `json:"scale"`
	PhaseSeconds int           `json:"phase_seconds"`
	Rounds       int           `json:"rounds"`
	SSLMode      string        `json:"sslmode"`
	CPUs         int           `json:"cpus"`
	LoadBefore   string        `json:"loadavg_before"`
	LoadAfter    string        `json:"loadavg_after"`
	Phases       []phase       `json:"phases"`
	Summary      []modeSummary `json:"summary"`
	Idle         []idleResult  `json:"idle_memory"`
	IdleNote     string        `json:"idle_note,omitempty"`
	IdleSlope    []slopeResult `json:"idle_slope,omitempty"`
	// PrivateCluster is set when the run used a PostgreSQL cluster of its
	// own (-private) rather than AIRLOCK_TEST_PG_DSN's server.
	PrivateCluster bool `json:"private_cluster,omitempty"`
	// GatewayTransactions is the sum of the transactions pgbench reported
	// through the gateway (warm-up included); GatewayCalls every call the
	// benchmark sent through it (those transactions, pgbench's start-up
	// queries and the idle phase's); RecordedCalls is what the review
	// counts for the grant, which must be at least GatewayCalls' total.
	GatewayTransactions int64        `json:"gateway_transactions"`
	GatewayCalls        gatewayCalls `json:"gateway_calls"`
	RecordedCalls       float64      `json:"recorded_calls"`
	RecordingOK         bool         `json:"recording_ok"`
	RecordingCheck      string       `json:"recording_check"`
	// SyncProbe is the durable write's latency on the journal's
	// filesystem, measured before the phases.
	SyncProbe *benchkit.SyncProbe `json:"sync_probe,omitempty"`
}

func summarize(modes []string, phases []phase, clients int, probe *benchkit.SyncProbe) []modeSummary {
	var out []modeSummary
	for _, mode := range modes {
		s := modeSummary{Mode: mode, TPS: map[string]float64{}, Ratio: map[string]float64{}, MiddleCPUus: map[string]float64{}, LatencyMS: map[string]float64{}}
		for _, path := range paths {
			var tps, cpu, lat []float64
			for _, p := range phases {
				if p.Mode == mode && p.Path == path {
					tps = append(tps, p.TPS)
					cpu = append(cpu, p.MiddleCPU/float64(p.Transactions)*1e6)
					lat = append(lat, p.LatencyMS)
				}
			}
			s.TPS[path] = benchkit.Median(tps)
			s.LatencyMS[path] = benchkit.Median(lat)
			if path != "direct" {
				s.MiddleCPUus[path] = benchkit.Median(cpu)
			}
		}
		for _, path := range paths {
			if d := s.TPS["direct"]; d > 0 {
				s.Ratio[path] = s.TPS[path] / d
			}
		}
		s.Met = s.Ratio["gateway"] >= s.Ratio["pgbouncer"]
		if p := s.TPS["pgbouncer"]; p > 0 {
			s.TPSPerPgBouncer = s.TPS["gateway"] / p
		}
		if p := s.MiddleCPUus["pgbouncer"]; p > 0 {
			s.CPUPerPgBouncer = s.MiddleCPUus["gateway"] / p
		}
		if probe != nil && s.LatencyMS["direct"] > 0 && s.LatencyMS["pgbouncer"] > 0 {
			c := ceilingFor(clients, s.TPS["direct"], s.LatencyMS["direct"], s.LatencyMS["pgbouncer"], *probe)
			s.Ceiling = &c
		}
		out = append(out, s)
	}
	return out
}

func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\npgbench -S -c %d -j %d, scale %d, %d rounds of %ds phases per path (alternating), sslmode=%s, %d CPUs\n",
		rep.Clients, rep.Threads, rep.Scale, rep.Rounds, rep.PhaseSeconds, rep.SSLMode, rep.CPUs)
	fmt.Fprintf(w, "load average before: %s; after: %s\n\n", rep.LoadBefore, rep.LoadAfter)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tdirect tps\tpgbouncer tps\tratio\tgateway tps\tratio\tgateway/pgbouncer tps (≥ 0.75)\tCPU µs/tx pgbouncer\tCPU µs/tx gateway\tgateway/pgbouncer CPU (≤ 2.5)\t")
	for _, s := range rep.Summary {
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f\t%.3f\t%.0f\t%.3f\t%.2f %s\t%.0f\t%.0f\t%.2f %s\t\n", s.Mode, s.TPS["direct"], s.TPS["pgbouncer"], s.Ratio["pgbouncer"],
			s.TPS["gateway"], s.Ratio["gateway"], s.TPSPerPgBouncer, verdict(s.TPSPerPgBouncer >= 0.75),
			s.MiddleCPUus["pgbouncer"], s.MiddleCPUus["gateway"], s.CPUPerPgBouncer, verdict(s.CPUPerPgBouncer > 0 && s.CPUPerPgBouncer <= 2.5))
	}
	tw.Flush()
	if p := rep.SyncProbe; p != nil {
		fmt.Fprintf(w, "\ndurable write on the journal's filesystem (pwrite + fdatasync, as the journal does), %s\n", p)
		fmt.Fprintln(w, "ceiling for a gateway that makes each statement durable before forwarding it, as it still does for writes (clients / (relay latency + write p50));")
		fmt.Fprintln(w, "the benchmark's grant only reads, so its statements travel while their records are written and wait for max(relay, write), not the sum:")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "mode\tlatency ms direct\tpgbouncer\tgateway\tceiling tps, PgBouncer's relay\tratio\tceiling tps, free relay\tratio\tPgBouncer's ratio\t")
		for _, s := range rep.Summary {
			if c := s.Ceiling; c != nil {
				fmt.Fprintf(tw, "%s\t%.3f\t%.3f\t%.3f\t%.0f\t%.3f\t%.0f\t%.3f\t%.3f\t\n", s.Mode, s.LatencyMS["direct"], s.LatencyMS["pgbouncer"], s.LatencyMS["gateway"],
					c.TPS, c.Ratio, c.FreeRelayTPS, c.FreeRelayRatio, s.Ratio["pgbouncer"])
			}
		}
		tw.Flush()
	}
	// What the gateway's calls waited for their records under the load, as
	// the server counted (its /metrics), beside the probe's disk alone.
	first := true
	for _, p := range rep.Phases {
		if p.Path != "gateway" || p.RecordWait == nil || p.Mode == "connect" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nwait for each call's record in the gateway's phases (airlock_log_wait_seconds from its /metrics; p50 and p90 as bucket bounds):")
			first = false
		}
		fmt.Fprintf(w, "  round %d %-8s %s\n", p.Round, p.Mode, p.RecordWait)
	}
	if cs := connectPhases(rep.Phases); len(cs) > 0 {
		fmt.Fprintf(w, "\na new connection per transaction (pgbench -S -C -c %d, one phase per path after the rounds):\n", rep.Clients)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "path\tconnections/s\taverage connection ms\tCPU µs per connection, middle\t")
		for _, p := range cs {
			cpu := "-"
			if p.Path != "direct" {
				cpu = fmt.Sprintf("%.0f", p.MiddleCPU/float64(p.Transactions)*1e6)
			}
			fmt.Fprintf(tw, "%s\t%.0f\t%.2f\t%s\t\n", p.Path, p.TPS, p.ConnectMS, cpu)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nmemory per idle connection (VmRSS after − before, divided by the connections; 1 s and %s after the last opened):\n", idleLater)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tconnections\tRSS before\tRSS after\tper connection\tRSS later\tper connection later\t")
	for _, m := range rep.Idle {
		fmt.Fprintf(tw, "%s\t%d\t%.1f MB\t%.1f MB\t%.1f KiB\t%.1f MB\t%.1f KiB\t\n", m.Path, m.Connections, mb(m.BeforeKB), mb(m.AfterKB), m.PerConnKB, mb(m.LaterKB), m.PerConnLaterKB)
	}
	tw.Flush()
	fmt.Fprintln(w, "the same, anonymous memory alone (RssAnon: without the binary's pages the logins' code faulted in):")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "process\tconnections\tanon before\tanon after\tper connection\tanon later\tper connection later\t")
	for _, m := range rep.Idle {
		fmt.Fprintf(tw, "%s\t%d\t%.1f MB\t%.1f MB\t%.1f KiB\t%.1f MB\t%.1f KiB\t\n", m.Path, m.Connections, mb(m.AnonBeforeKB), mb(m.AnonAfterKB), m.AnonPerConnKB, mb(m.AnonLaterKB), m.AnonPerConnLaterKB)
	}
	tw.Flush()
	if len(rep.Idle) > 0 && rep.Idle[0].More > 0 {
		fmt.Fprintf(w, "one more idle connection (a second batch opened after the later reading; VmRSS and RssAnon growth %s after its last connection, over the batch):\n", idleMoreLater)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "process\tmore connections\tRSS then\tper connection\tanon then\tper connection, anon\t")
		for _, m := range rep.Idle {
			fmt.Fprintf(tw, "%s\t%d\t%.1f MB\t%.2f KiB\t%.1f MB\t%.2f KiB\t\n", m.Path, m.More, mb(m.MoreLaterKB), m.MorePerConnKB, mb(m.AnonMoreLaterKB), m.AnonMorePerConnKB)
		}
		tw.Flush()
		for _, m := range rep.Idle {
			if m.GoMoreBytes != nil {
				fmt.Fprintf(w, "%s, the Go runtime's gauges over the same batch, per connection: %s\n", m.Path, goMemoryLine(m.GoMoreBytes, m.AnonMorePerConnKB))
			}
		}
	}
	printSlope(w, rep.IdleSlope)
	if rep.IdleNote != "" {
		fmt.Fprintln(w, rep.IdleNote)
	}
	fmt.Fprintf(w, "\nrecording: %s\n", rep.RecordingCheck)
}

// connectPhases are the phases with a new connection per transaction.
func connectPhases(phases []phase) []phase {
	var out []phase
	for _, p := range phases {
		if p.Mode == "connect" {
			out = append(out, p)
		}
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// mb converts kB (KiB, as /proc reports) to MB (10^6 bytes).
func mb(kb int64) float64 { return float64(kb) * 1024 / 1e6 }
