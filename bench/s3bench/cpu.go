package main

import (
	"time"

	"github.com/airlock-dev/airlock/bench/internal/benchkit"
)

// cpuMeter measures the CPU the three parties use during a phase.
type cpuMeter struct {
	gatewayPID, upstreamPID int
}

// cpuUse is CPU time used during a phase, in seconds.
type cpuUse struct {
	Clients  float64 `json:"clients_cpu_s"`
	Gateway  float64 `json:"gateway_cpu_s"`
	Upstream float64 `json:"upstream_cpu_s"`
}

type cpuMark struct{ self, gw, up time.Duration }

func (m cpuMeter) mark() cpuMark {
	gw, _ := benchkit.CPUTime(m.gatewayPID)
	up, _ := benchkit.CPUTime(m.upstreamPID)
	return cpuMark{benchkit.SelfCPU(), gw, up}
}

func (m cpuMeter) since(a cpuMark) cpuUse {
	b := m.mark()
	return cpuUse{Clients: (b.self - a.self).Seconds(), Gateway: (b.gw - a.gw).Seconds(), Upstream: (b.up - a.up).Seconds()}
}
