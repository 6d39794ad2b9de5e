package benchkit

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// GoMemory names the Go runtime's memory gauges (client_golang's Go
// collector, on the server's /metrics) that split a process's anonymous
// memory: what the heap's spans hold, the heap's idle part and how much of
// it was given back to the system (so not resident), the goroutines'
// stacks and the span structures.
var GoMemory = []string{
	"go_memstats_heap_inuse_bytes",
	"go_memstats_heap_idle_bytes",
	"go_memstats_heap_released_bytes",
	"go_memstats_stack_inuse_bytes",
	"go_memstats_mspan_inuse_bytes",
}

// fetchMetrics GETs the server's /metrics with the operator's key.
func (s *Server) fetchMetrics() (io.ReadCloser, error) {
	req, err := http.NewRequest("GET", "http://"+s.API+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.OpsKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		resp.Body.Close()
		return nil, fmt.Errorf("GET /metrics: %s: %s", resp.Status, b)
	}
	return resp.Body, nil
}

// ScrapeGauges reads the named unlabelled metrics from the server's
// /metrics; a name the server does not expose is an error.
func (s *Server) ScrapeGauges(names []string) (map[string]float64, error) {
	body, err := s.fetchMetrics()
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return ParseGauges(body, names)
}

// ParseGauges reads the named unlabelled metrics from Prometheus's text
// format.
func ParseGauges(r io.Reader, names []string) (map[string]float64, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	out := make(map[string]float64, len(names))
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[key] {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: %s: %v", key, err)
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			return nil, fmt.Errorf("metrics: no %s", n)
		}
	}
	return out, nil
}
