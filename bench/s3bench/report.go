package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// summary compares one workload's phases on the two sides.
type summary struct {
	Workload      string  `json:"workload"`
	Unit          string  `json:"unit"`
	DirectBest    float64 `json:"direct_best"`
	DirectMedian  float64 `json:"direct_median"`
	GatewayBest   float64 `json:"gateway_best"`
	GatewayMedian float64 `json:"gateway_median"`
	// Ratio is gateway median / direct median: the figure held to Target.
	Ratio     float64 `json:"ratio_median"`
	RatioBest float64 `json:"ratio_best"`
	Target    float64 `json:"target"`
	Met       bool    `json:"met"`
	// CPU is the median CPU time per call of each party, per side.
	CPU map[string]perCall `json:"cpu_us_per_call"`
}

// perCall is CPU microseconds per call. On a machine where clients,
// gateway and upstream share the cores, the gateway's throughput ratio is
// bounded by direct Total / gateway Total.
type perCall struct {
	Clients  float64 `json:"clients"`
	Gateway  float64 `json:"gateway"`
	Upstream float64 `json:"upstream"`
	Total    float64 `json:"total"`
}

// bigResult is the large-object streaming test.
type bigResult struct {
	Size      int64      `json:"size_bytes"`
	Transfers []transfer `json:"transfers"`
	// BaselineRSSKB is the gateway's VmRSS just before the big transfers.
	BaselineRSSKB int64 `json:"gateway_baseline_rss_kb"`
	// PeakRSSKB is the highest VmRSS sampled during the gateway transfers.
	PeakRSSKB int64 `json:"gateway_peak_rss_kb"`
	// HWMKB is VmHWM at the end: the peak over the server's whole life,
	// the earlier concurrent phases included.
	HWMKB    int64 `json:"gateway_vmhwm_kb"`
	TargetMB int64 `json:"target_mb"`
	Met      bool  `json:"met"`
}

// report is what bench/out/s3bench.json holds.
type report struct {
	Clients        int        `json:"clients"`
	PhaseSeconds   float64    `json:"phase_seconds"`
	Rounds         int        `json:"rounds"`
	CPUs           int        `json:"cpus"`
	GoVersion      string     `json:"go_version"`
	Phases         []phase    `json:"phases"`
	Summary        []summary  `json:"summary"`
	Big            *bigResult `json:"big,omitempty"`
	GatewayCalls   int64      `json:"gateway_calls_sent"`
	RecordedCalls  float64    `json:"recorded_calls"`
	RecordingCheck string     `json:"recording_check"`
}

func summarize(ws []workload, phases []phase) []summary {
	var out []summary
	for _, w := range ws {
		rates := map[string][]float64{}
		cpus := map[string][][3]float64{}
		for _, p := range phases {
			if p.Workload == w.Name && p.Ops > 0 {
				rates[p.Side] = append(rates[p.Side], p.Rate)
				n := float64(p.Ops) / 1e6
				cpus[p.Side] = append(cpus[p.Side], [3]float64{p.CPU.Clients / n, p.CPU.Gateway / n, p.CPU.Upstream / n})
			}
		}
		d, g := rates["direct"], rates["gateway"]
		if len(d) == 0 || len(g) == 0 {
			continue
		}
		s := summary{Workload: w.Name, Unit: w.Unit, Target: w.Target,
			DirectBest: slices.Max(d), DirectMedian: benchkit.Median(d), GatewayBest: slices.Max(g), GatewayMedian: benchkit.Median(g)}
		s.Ratio = s.GatewayMedian / s.DirectMedian
		s.RatioBest = s.GatewayBest / s.DirectBest
		s.Met = s.Ratio >= s.Target
		s.CPU = map[string]perCall{}
		for side, cs := range cpus {
			col := func(i int) float64 {
				var xs []float64
				for _, c := range cs {
					xs = append(xs, c[i])
				}
				return benchkit.Median(xs)
			}
			pc := perCall{Clients: col(0), Gateway: col(1), Upstream: col(2)}
			pc.Total = pc.Clients + pc.Gateway + pc.Upstream
			s.CPU[side] = pc
		}
		out = append(out, s)
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func printReport(w io.Writer, rep *report) {
	fmt.Fprintf(w, "\n%d clients, %d rounds of %.0fs phases per side (direct and gateway alternating), %d CPUs, %s\n\n",
		rep.Clients, rep.Rounds, rep.PhaseSeconds, rep.CPUs, rep.GoVersion)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tunit\tdirect best\tdirect median\tgateway best\tgateway median\tratio (median)\tratio (best)\ttarget\t\t")
	for _, s := range rep.Summary {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t>= %.2f\t%s\t\n",
			s.Workload, s.Unit, s.DirectBest, s.DirectMedian, s.GatewayBest, s.GatewayMedian, s.Ratio, s.RatioBest, s.Target, verdict(s.Met))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nCPU per call, µs (median over rounds; clients = this process's SDK clients):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\tclients\tgateway\tupstream\ttotal\t")
	for _, s := range rep.Summary {
		for _, side := range []string{"direct", "gateway"} {
			c := s.CPU[side]
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%.0f\t%.0f\t\n", s.Workload, side, c.Clients, c.Gateway, c.Upstream, c.Total)
		}
	}
	tw.Flush()
	if b := rep.Big; b != nil {
		fmt.Fprintf(w, "\n%s object, one client:\n", size(b.Size))
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "call\tside\tseconds\tMiB/s\tgateway peak RSS\t")
		for _, t := range b.Transfers {
			rss := "-"
			if t.PeakRSSKB > 0 {
				rss = fmt.Sprintf("%.1f MB (%d samples)", mb(t.PeakRSSKB), t.Samples)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.1f\t%s\t\n", t.Op, t.Side, t.Seconds, t.MiBps, rss)
		}
		tw.Flush()
		fmt.Fprintf(w, "gateway RSS: %.1f MB before, peak %.1f MB while streaming (target < %d MB: %s); VmHWM over the whole run %.1f MB\n",
			mb(b.BaselineRSSKB), mb(b.PeakRSSKB), b.TargetMB, verdict(b.Met), mb(b.HWMKB))
	}
	fmt.Fprintf(w, "\nrecording: %s\n", rep.RecordingCheck)
}

// mb converts kB (KiB, as /proc reports) to MB (10^6 bytes).
func mb(kb int64) float64 { return float64(kb) * 1024 / 1e6 }

func size(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d B", n)
}
