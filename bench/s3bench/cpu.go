package main

import (
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// cpuMeter measures the CPU every party uses during a phase, whichever
// side the phase runs on: the clients (this process), airlock serve,
// nginx when it runs, and the upstream. The proxy not on a phase's path
// is counted too, so that work it does in the background (the gateway
// copying its journal into SQLite after a phase) shows where it falls.
type cpuMeter struct {
	gatewayPID, upstreamPID int
	nginx                   *nginxProxy
}

// cpuUse is CPU time used during a phase, in seconds. Gateway is always
// airlock serve's and Nginx always nginx's (master and workers; omitted
// when zero: nginx idle, or not running), on every side.
type cpuUse struct {
	Clients  float64 `json:"clients_cpu_s"`
	Gateway  float64 `json:"gateway_cpu_s"`
	Nginx    float64 `json:"nginx_cpu_s,omitempty"`
	Upstream float64 `json:"upstream_cpu_s"`
}

type cpuMark struct{ self, gw, ng, up time.Duration }

func (m cpuMeter) mark() cpuMark {
	gw, _ := benchkit.CPUTime(m.gatewayPID)
	up, _ := benchkit.CPUTime(m.upstreamPID)
	var ng time.Duration
	if m.nginx != nil {
		ng = m.nginx.cpuTime()
	}
	return cpuMark{benchkit.SelfCPU(), gw, ng, up}
}

func (m cpuMeter) since(a cpuMark) cpuUse {
	b := m.mark()
	return cpuUse{Clients: (b.self - a.self).Seconds(), Gateway: (b.gw - a.gw).Seconds(), Nginx: (b.ng - a.ng).Seconds(), Upstream: (b.up - a.up).Seconds()}
}
