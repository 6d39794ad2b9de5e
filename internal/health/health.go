// Package health answers a load balancer's readiness probe (GET /readyz):
// whether this replica can serve calls right now, from a few cheap checks
// (the store answers, grants are loaded, the log can write, the grant
// notification connection is up), each bounded by a short timeout.
//
// The answer is one line of JSON, 200 when every check passes and 503
// otherwise, naming each check with "ok" or a fixed, short reason. The
// underlying error is logged, never returned: the probe needs no
// authentication, and errors from a database driver can name hosts, users
// or statements. Results are cached briefly and computed by one caller at a
// time, so that a flood of probes costs the store one query per interval.
package health

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Check is one readiness condition.
type Check struct {
	// Name is the check's key in the answer ("store", "log", …).
	Name string
	// Run returns nil when the condition holds. It gets a context bounded by
	// the Checker's timeout.
	Run func(ctx context.Context) error
	// Failing is the reason shown when Run fails ("unreachable", …).
	Failing string
}

// Report is the answer to one probe.
type Report struct {
	// Status is "ready" or "not ready".
	Status string `json:"status"`
	// Checks maps each check's name to "ok" or its Failing reason.
	Checks map[string]string `json:"checks"`
}

// Ready reports whether every check passed.
func (r Report) Ready() bool { return r.Status == "ready" }

// Checker runs the checks.
type Checker struct {
	checks  []Check
	timeout time.Duration
	ttl     time.Duration
	logger  *slog.Logger

	mu   sync.Mutex // held while checking: one probe at a time reaches the store
	last Report
	at   time.Time
}

// Defaults for New.
const (
	DefaultTimeout = 2 * time.Second
	DefaultTTL     = 500 * time.Millisecond
)

// New returns a Checker running checks with DefaultTimeout each, caching
// the result for DefaultTTL.
func New(logger *slog.Logger, checks ...Check) *Checker {
	return &Checker{checks: checks, timeout: DefaultTimeout, ttl: DefaultTTL, logger: logger}
}

// Check runs the checks (concurrently, each bounded by the timeout), or
// returns the cached report if it is fresh.
func (c *Checker) Check(ctx context.Context) Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && time.Since(c.at) < c.ttl {
		return c.last
	}
	rep := Report{Status: "ready", Checks: make(map[string]string, len(c.checks))}
	errs := make([]error, len(c.checks))
	var wg sync.WaitGroup
	for i, ch := range c.checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			errs[i] = ch.Run(cctx)
		}()
	}
	wg.Wait()
	for i, ch := range c.checks {
		if errs[i] == nil {
			rep.Checks[ch.Name] = "ok"
			continue
		}
		rep.Status = "not ready"
		rep.Checks[ch.Name] = ch.Failing
		if c.logger != nil {
			c.logger.Warn("not ready", "check", ch.Name, "err", errs[i])
		}
	}
	c.last, c.at = rep, time.Now()
	return rep
}

// ServeHTTP answers the probe: 200 or 503 with the report as one line of
// JSON. It never caches at the HTTP level.
func (c *Checker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := c.Check(r.Context())
	b, _ := json.Marshal(rep)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	status := http.StatusOK
	if !rep.Ready() {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}
