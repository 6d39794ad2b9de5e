package benchkit

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// LogWait is the server's airlock_log_wait_seconds histogram (GET
// /metrics): how long calls waited for their records' durability, as the
// server measured it under the benchmark's load, beside what ProbeSync
// measures of the disk alone.
type LogWait struct {
	Count, Sum float64
	Buckets    []WaitBucket // cumulative, by finite upper bound
}

// WaitBucket is one cumulative bucket: Count calls waited at most Le seconds.
type WaitBucket struct {
	Le    float64
	Count float64
}

// Sub is the histogram of the calls between an earlier scrape and w.
func (w LogWait) Sub(earlier LogWait) LogWait {
	d := LogWait{Count: w.Count - earlier.Count, Sum: w.Sum - earlier.Sum}
	for i, b := range w.Buckets {
		c := b.Count
		if i < len(earlier.Buckets) && earlier.Buckets[i].Le == b.Le {
			c -= earlier.Buckets[i].Count
		}
		d.Buckets = append(d.Buckets, WaitBucket{Le: b.Le, Count: c})
	}
	return d
}

// MeanUS is the mean wait in microseconds (0 without calls).
func (w LogWait) MeanUS() float64 {
	if w.Count <= 0 {
		return 0
	}
	return w.Sum / w.Count * 1e6
}

// QuantileUS is the upper bound, in microseconds, of the bucket that holds
// quantile q of the calls: the q-th call waited at most that long
// (+Inf if beyond the last finite bucket, 0 without calls).
func (w LogWait) QuantileUS(q float64) float64 {
	if w.Count <= 0 {
		return 0
	}
	rank := q * w.Count
	for _, b := range w.Buckets {
		if b.Count >= rank {
			return b.Le * 1e6
		}
	}
	return math.Inf(1)
}

// String is "mean M µs, p50 ≤ A µs, p90 ≤ B µs over N calls".
func (w LogWait) String() string {
	return fmt.Sprintf("mean %.0f µs, p50 ≤ %.0f µs, p90 ≤ %.0f µs over %.0f calls", w.MeanUS(), w.QuantileUS(0.5), w.QuantileUS(0.9), w.Count)
}

// ScrapeLogWait reads airlock_log_wait_seconds from the server's /metrics
// with the operator's key.
func (s *Server) ScrapeLogWait() (LogWait, error) {
	body, err := s.fetchMetrics()
	if err != nil {
		return LogWait{}, err
	}
	defer body.Close()
	return ParseLogWait(body)
}

// ParseLogWait reads the airlock_log_wait_seconds histogram from
// Prometheus's text format.
func ParseLogWait(r io.Reader) (LogWait, error) {
	const name = "airlock_log_wait_seconds"
	var w LogWait
	found := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return LogWait{}, fmt.Errorf("metrics: %q: %v", line, err)
		}
		switch {
		case key == name+"_sum":
			w.Sum, found = v, true
		case key == name+"_count":
			w.Count, found = v, true
		case strings.HasPrefix(key, name+`_bucket{le="`):
			le, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(key, name+`_bucket{le="`), `"}`), 64)
			if err != nil {
				return LogWait{}, fmt.Errorf("metrics: %q: %v", line, err)
			}
			if !math.IsInf(le, 1) { // the +Inf bucket is Count (and JSON has no Inf)
				w.Buckets = append(w.Buckets, WaitBucket{Le: le, Count: v})
			}
		}
	}
	if err := sc.Err(); err != nil {
		return LogWait{}, err
	}
	if !found {
		return LogWait{}, fmt.Errorf("metrics: no %s (is the server older than its /metrics?)", name)
	}
	sort.Slice(w.Buckets, func(i, j int) bool { return w.Buckets[i].Le < w.Buckets[j].Le })
	return w, nil
}
