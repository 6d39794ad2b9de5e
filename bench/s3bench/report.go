package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// summary compares one workload's phases on the sides.
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
	// The nginx side, absent when it did not run. NginxRatio is nginx
	// median / direct median, the cost of a hop alone, and
	// GatewayNginxRatio gateway median / nginx median, the gateway's cost
	// beyond it; both are for comparison, not held to Target.
	NginxBest         float64 `json:"nginx_best,omitempty"`
	NginxMedian       float64 `json:"nginx_median,omitempty"`
	NginxRatio        float64 `json:"nginx_ratio,omitempty"`
	NginxRatioBest    float64 `json:"nginx_ratio_best,omitempty"`
	GatewayNginxRatio float64 `json:"gateway_nginx_ratio,omitempty"`
	// The goproxy side, likewise: GoproxyRatio is goproxy median / direct
	// median, what Go's net/http costs for a hop alone, and
	// GatewayGoproxyRatio gateway median / goproxy median, what the
	// gateway's own work costs beyond that floor.
	GoproxyBest         float64 `json:"goproxy_best,omitempty"`
	GoproxyMedian       float64 `json:"goproxy_median,omitempty"`
	GoproxyRatio        float64 `json:"goproxy_ratio,omitempty"`
	GoproxyRatioBest    float64 `json:"goproxy_ratio_best,omitempty"`
	GatewayGoproxyRatio float64 `json:"gateway_goproxy_ratio,omitempty"`
	// Issue 15's floors, held against the goproxy side when it ran:
	// GatewayGoproxyRatio at least PeerFloor, and the gateway's CPU per
	// call over goproxy's (CPURatio) at most CPUCeiling where one is set.
	PeerFloor  float64 `json:"peer_floor,omitempty"`
	PeerMet    *bool   `json:"peer_met,omitempty"`
	CPURatio   float64 `json:"cpu_ratio_gateway_goproxy,omitempty"`
	CPUCeiling float64 `json:"cpu_ceiling,omitempty"`
	CPUMet     *bool   `json:"cpu_met,omitempty"`
	// CPU is the median CPU time per call of each party, per side
	// ("direct", "nginx", "goproxy", "gateway").
	CPU map[string]perCall `json:"cpu_us_per_call"`
}

// perCall is CPU microseconds per call. Gateway is airlock serve's, Nginx
// nginx's and Goproxy goproxy's, on every side: the middle process is
// Nginx on the nginx side, Goproxy on the goproxy side and Gateway on the
// gateway side. Total is all the parties together, nginx and goproxy
// included. On a machine where they share the cores, a side's
// throughput ratio to direct is bounded by direct Total / its Total.
type perCall struct {
	Clients  float64 `json:"clients"`
	Gateway  float64 `json:"gateway"`
	Nginx    float64 `json:"nginx,omitempty"`
	Goproxy  float64 `json:"goproxy,omitempty"`
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
	Clients      int     `json:"clients"`
	PhaseSeconds float64 `json:"phase_seconds"`
	Rounds       int     `json:"rounds"`
	CPUs         int     `json:"cpus"`
	GoVersion    string  `json:"go_version"`
	// TLS says the clients reached the gateway and goproxy over TLS (-tls).
	TLS bool `json:"tls,omitempty"`
	// Nginx is the nginx that ran ("nginx/1.22.1, 2 workers"), or empty
	// with NginxNote saying why none did.
	Nginx     string `json:"nginx,omitempty"`
	NginxNote string `json:"nginx_note,omitempty"`
	// Goproxy is the Go proxy that ran ("go1.26.8 httputil.ReverseProxy,
	// GOMAXPROCS 2"), or empty with GoproxyNote saying why none did.
	Goproxy        string     `json:"goproxy,omitempty"`
	GoproxyNote    string     `json:"goproxy_note,omitempty"`
	Phases         []phase    `json:"phases"`
	Summary        []summary  `json:"summary"`
	Big            *bigResult `json:"big,omitempty"`
	GatewayCalls   int64      `json:"gateway_calls_sent"`
	RecordedCalls  float64    `json:"recorded_calls"`
	RecordingCheck string     `json:"recording_check"`
	// SyncProbe is one durable write's latency and CPU on the gateway's
	// data directory (pwrite + fdatasync, as its journal writes).
	SyncProbe *benchkit.SyncProbe `json:"sync_probe,omitempty"`
}

func summarize(ws []workload, phases []phase) []summary {
	var out []summary
	for _, w := range ws {
		rates := map[string][]float64{}
		cpus := map[string][][5]float64{}
		for _, p := range phases {
			if p.Workload == w.Name && p.Ops > 0 {
				rates[p.Side] = append(rates[p.Side], p.Rate)
				n := float64(p.Ops) / 1e6
				cpus[p.Side] = append(cpus[p.Side], [5]float64{p.CPU.Clients / n, p.CPU.Gateway / n, p.CPU.Nginx / n, p.CPU.Goproxy / n, p.CPU.Upstream / n})
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
		if ng := rates["nginx"]; len(ng) > 0 {
			s.NginxBest, s.NginxMedian = slices.Max(ng), benchkit.Median(ng)
			s.NginxRatio = s.NginxMedian / s.DirectMedian
			s.NginxRatioBest = s.NginxBest / s.DirectBest
			s.GatewayNginxRatio = s.GatewayMedian / s.NginxMedian
		}
		if gp := rates["goproxy"]; len(gp) > 0 {
			s.GoproxyBest, s.GoproxyMedian = slices.Max(gp), benchkit.Median(gp)
			s.GoproxyRatio = s.GoproxyMedian / s.DirectMedian
			s.GoproxyRatioBest = s.GoproxyBest / s.DirectBest
			s.GatewayGoproxyRatio = s.GatewayMedian / s.GoproxyMedian
		}
		s.CPU = map[string]perCall{}
		for side, cs := range cpus {
			col := func(i int) float64 {
				var xs []float64
				for _, c := range cs {
					xs = append(xs, c[i])
				}
				return benchkit.Median(xs)
			}
			pc := perCall{Clients: col(0), Gateway: col(1), Nginx: col(2), Goproxy: col(3), Upstream: col(4)}
			pc.Total = pc.Clients + pc.Gateway + pc.Nginx + pc.Goproxy + pc.Upstream
			s.CPU[side] = pc
		}
		if s.GoproxyMedian > 0 && w.PeerFloor > 0 {
			s.PeerFloor = w.PeerFloor
			met := s.GatewayGoproxyRatio >= w.PeerFloor
			s.PeerMet = &met
			if gp := s.CPU["goproxy"].Goproxy; gp > 0 {
				s.CPURatio = s.CPU["gateway"].Gateway / gp
				if w.CPUCeiling > 0 {
					s.CPUCeiling = w.CPUCeiling
					cm := s.CPURatio <= w.CPUCeiling
					s.CPUMet = &cm
				}
			}
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
	sides := []string{"direct"}
	ngx := "nginx: " + rep.NginxNote
	if rep.Nginx != "" {
		sides = append(sides, "nginx")
		ngx = "nginx: " + rep.Nginx
	}
	gpx := "goproxy: " + rep.GoproxyNote
	if rep.Goproxy != "" {
		sides = append(sides, "goproxy")
		gpx = "goproxy: " + rep.Goproxy
	}
	sides = append(sides, "gateway")
	fmt.Fprintf(w, "\n%d clients, %d rounds of %.0fs phases per side (%s alternating), %d CPUs, %s; %s; %s\n",
		rep.Clients, rep.Rounds, rep.PhaseSeconds, strings.Join(sides, ", "), rep.CPUs, rep.GoVersion, ngx, gpx)
	if rep.TLS {
		fmt.Fprintln(w, "TLS (-tls): the clients reach the gateway and goproxy over TLS 1.3, HTTP/1.1; direct and the upstream hop are plain HTTP")
	}
	fmt.Fprintln(w)
	// opt prints a figure of a side that may not have run, or "-".
	opt := func(format string, v float64) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	fmt.Fprintln(w, "medians over rounds; gateway/direct is held to the target, nginx/direct is what one plain hop costs here,\n"+
		"goproxy/direct what Go's net/http costs for one, and gateway/goproxy what the gateway's own work costs beyond it:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tunit\tdirect\tnginx\tgoproxy\tgateway\tgateway/direct\ttarget\t\tnginx/direct\tgateway/nginx\tgoproxy/direct\tgateway/goproxy\t")
	for _, s := range rep.Summary {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%.1f\t%.3f\t>= %.2f\t%s\t%s\t%s\t%s\t%s\t\n",
			s.Workload, s.Unit, s.DirectMedian, opt("%.1f", s.NginxMedian), opt("%.1f", s.GoproxyMedian), s.GatewayMedian, s.Ratio, s.Target, verdict(s.Met),
			opt("%.3f", s.NginxRatio), opt("%.3f", s.GatewayNginxRatio), opt("%.3f", s.GoproxyRatio), opt("%.3f", s.GatewayGoproxyRatio))
	}
	tw.Flush()
	printPeerFloors(w, rep.Summary)
	fmt.Fprintln(w, "\nbest phase of each side:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tunit\tdirect\tnginx\tgoproxy\tgateway\tgateway/direct\tnginx/direct\tgoproxy/direct\tgateway/goproxy\t")
	for _, s := range rep.Summary {
		// gateway/goproxy of the best phases is printed only: the JSON
		// has both bests to divide.
		gwgp := 0.0
		if s.GoproxyBest > 0 {
			gwgp = s.GatewayBest / s.GoproxyBest
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\t%s\t%.1f\t%.3f\t%s\t%s\t%s\t\n",
			s.Workload, s.Unit, s.DirectBest, opt("%.1f", s.NginxBest), opt("%.1f", s.GoproxyBest), s.GatewayBest, s.RatioBest,
			opt("%.3f", s.NginxRatioBest), opt("%.3f", s.GoproxyRatioBest), opt("%.3f", gwgp))
	}
	tw.Flush()
	fmt.Fprintf(w, "\nCPU per call, µs (median over rounds; clients = this process's SDK clients; gateway = airlock serve,\n"+
		"nginx = its master and workers and goproxy = the ReverseProxy process, on every side: the one on the path\n"+
		"is the middle, the others idle or catch up):\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tside\tclients\tgateway\tnginx\tgoproxy\tupstream\ttotal\t")
	for _, s := range rep.Summary {
		for _, side := range sides {
			c := s.CPU[side]
			ng, gp := "-", "-"
			if rep.Nginx != "" {
				ng = fmt.Sprintf("%.0f", c.Nginx)
			}
			if rep.Goproxy != "" {
				gp = fmt.Sprintf("%.0f", c.Goproxy)
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f\t%s\t%s\t%.0f\t%.0f\t\n", s.Workload, side, c.Clients, c.Gateway, ng, gp, c.Upstream, c.Total)
		}
	}
	tw.Flush()
	if p := rep.SyncProbe; p != nil {
		fmt.Fprintf(w, "\ndurable write on the gateway's data directory (pwrite + fdatasync, as its journal writes once per batch of calls), %s\n", p)
	}
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

// printPeerFloors prints issue 15's floors, which compare the gateway with
// Go's httputil.ReverseProxy doing the same hop in the same run (the
// gateway/direct target above is an earlier issue's), when goproxy ran.
func printPeerFloors(w io.Writer, sums []summary) {
	var rows []summary
	for _, s := range sums {
		if s.PeerMet != nil {
			rows = append(rows, s)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, "\nissue 15's floors, against Go's ReverseProxy (medians; CPU: the gateway's per call over goproxy's):")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "workload\tgateway/goproxy\tfloor\t\tCPU gateway/goproxy\tceiling\t\t")
	for _, s := range rows {
		cpu, ceil, cv := "-", "-", ""
		if s.CPURatio > 0 {
			cpu = fmt.Sprintf("%.2fx", s.CPURatio)
		}
		if s.CPUMet != nil {
			ceil, cv = fmt.Sprintf("<= %.2fx", s.CPUCeiling), verdict(*s.CPUMet)
		}
		fmt.Fprintf(tw, "%s\t%.3f\t>= %.2f\t%s\t%s\t%s\t%s\t\n", s.Workload, s.GatewayGoproxyRatio, s.PeerFloor, verdict(*s.PeerMet), cpu, ceil, cv)
	}
	tw.Flush()
}
