package main

import (
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// cpuMeter measures the CPU every party uses during a phase, whichever
// side the phase runs on: the clients (this process), airlock serve,
// nginx and goproxy when they run, and the upstream. The proxies not on a
// phase's path are counted too, so that work one does in the background
// (the gateway copying its journal into SQLite after a phase) shows where
// it falls.
type cpuMeter struct {
	gatewayPID, upstreamPID int
	nginx                   *nginxProxy
	goproxy                 *goProxy
}

// cpuUse is CPU time used during a phase, in seconds. Gateway is always
// airlock serve's, Nginx always nginx's (master and workers) and Goproxy
// always goproxy's, on every side; the last two are omitted when zero
// (idle, or not running).
type cpuUse struct {
	Clients  float64 `json:"clients_cpu_s"`
	Gateway  float64 `json:"gateway_cpu_s"`
	Nginx    float64 `json:"nginx_cpu_s,omitempty"`
	Goproxy  float64 `json:"goproxy_cpu_s,omitempty"`
	Upstream float64 `json:"upstream_cpu_s"`
}

type cpuMark struct{ self, gw, ng, gp, up time.Duration }

func (m cpuMeter) mark() cpuMark {
	gw, _ := benchkit.CPUTime(m.gatewayPID)
	up, _ := benchkit.CPUTime(m.upstreamPID)
	var ng time.Duration
	if m.nginx != nil {
		ng = m.nginx.cpuTime()
	}
	var gp time.Duration
	if m.goproxy != nil {
		gp = m.goproxy.cpuTime()
	}
	return cpuMark{benchkit.SelfCPU(), gw, ng, gp, up}
}

func (m cpuMeter) since(a cpuMark) cpuUse {
	b := m.mark()
	return cpuUse{Clients: (b.self - a.self).Seconds(), Gateway: (b.gw - a.gw).Seconds(), Nginx: (b.ng - a.ng).Seconds(), Goproxy: (b.gp - a.gp).Seconds(), Upstream: (b.up - a.up).Seconds()}
}
