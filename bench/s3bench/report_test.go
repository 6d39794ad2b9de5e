package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestPeerFloors: issue 15's floors are held against the goproxy side
// (rate ratio and CPU per call), not against direct, and are left out
// when goproxy did not run.
func TestPeerFloors(t *testing.T) {
	ws, err := workloads("get1k,put1m")
	if err != nil {
		t.Fatal(err)
	}
	// Two rounds; CPU seconds chosen so that per call the gateway spends
	// 150 µs against goproxy's 100 (1.5x, over get1k's 1.4x ceiling).
	var ps []phase
	for r := 0; r < 2; r++ {
		ps = append(ps,
			phase{Workload: "GetObject 1 KiB", Side: "direct", Round: r, Ops: 10000, Rate: 1000},
			phase{Workload: "GetObject 1 KiB", Side: "goproxy", Round: r, Ops: 10000, Rate: 900, CPU: cpuUse{Goproxy: 1.0}},
			phase{Workload: "GetObject 1 KiB", Side: "gateway", Round: r, Ops: 10000, Rate: 810, CPU: cpuUse{Gateway: 1.5}},
			phase{Workload: "PutObject 1 MiB", Side: "direct", Round: r, Ops: 100, Rate: 300},
			phase{Workload: "PutObject 1 MiB", Side: "gateway", Round: r, Ops: 100, Rate: 200},
		)
	}
	sums := summarize(ws, ps)
	if len(sums) != 2 {
		t.Fatalf("%d summaries, want 2", len(sums))
	}
	get, put := sums[0], sums[1]
	if get.PeerMet == nil || !*get.PeerMet || get.PeerFloor != 0.85 {
		t.Errorf("get1k: gateway/goproxy 0.9 against floor %v: met %v, want met", get.PeerFloor, get.PeerMet)
	}
	if get.CPURatio < 1.49 || get.CPURatio > 1.51 || get.CPUMet == nil || *get.CPUMet {
		t.Errorf("get1k: CPU ratio %v (met %v), want 1.5 and missed against 1.4", get.CPURatio, get.CPUMet)
	}
	if put.PeerMet != nil || put.CPUMet != nil {
		t.Errorf("put1m without a goproxy side was held to the peer floors: %+v", put)
	}
	var b bytes.Buffer
	printPeerFloors(&b, sums)
	out := b.String()
	for _, want := range []string{"issue 15's floors", "GetObject 1 KiB", "0.900", ">= 0.85", "1.50x", "<= 1.40x", "MISSED"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "PutObject") {
		t.Errorf("report holds PutObject, which had no goproxy side:\n%s", out)
	}
}
