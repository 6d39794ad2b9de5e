// Package metrics exposes Airlock's own measurements in Prometheus's text
// format, for an operator's scraper: how long the audit log holds callers
// for durability and how its batches go (the cost every gateway call pays
// before its answer, and on most disks the bound on a gateway's latency,
// see bench/README.md), the log's size, and the Go runtime's and the
// process's standard collectors; and what the gateways recorded: sessions
// started and open, calls allowed and denied, attempts refused before a
// session, by gateway; and statements the upstream refused for lack of
// privilege after the grant's scope allowed them.
//
// Nothing here names an identity, a grant or a resource: the figures are
// aggregates, so that the scraper's key, which must still be a person's
// (GET /metrics on the API), reads nothing a review would.
package metrics

import (
	"net/http"

	"github.com/airlock-dev/airlock/internal/auditlog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one process's registry and the collectors Airlock feeds.
type Metrics struct {
	reg *prometheus.Registry

	logWait    prometheus.Histogram
	logWrite   prometheus.Histogram
	logBatch   prometheus.Histogram
	logFailed  prometheus.Counter
	logBatches prometheus.Counter

	sessionsStarted *prometheus.CounterVec
	sessionsOpen    *prometheus.GaugeVec
	calls           *prometheus.CounterVec
	rejected        *prometheus.CounterVec
	// byGateway holds each gateway label's children, looked up once:
	// CallRecorded runs on every call's path.
	byGateway map[string]*gatewayMetrics
}

type gatewayMetrics struct {
	started, rejected prometheus.Counter
	open              prometheus.Gauge
	allowed, denied   prometheus.Counter
	refused           prometheus.Counter
}

// Buckets for the log's waits and writes: a durable write costs tens of
// microseconds on a local NVMe disk, a few hundred on a virtual one, and
// milliseconds on network storage or a PostgreSQL store across a network.
var durationBuckets = []float64{
	50e-6, 100e-6, 200e-6, 300e-6, 500e-6, 750e-6,
	1e-3, 2e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1,
}

// New returns a registry with the Go runtime's and the process's
// collectors and Airlock's own.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		logWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_log_wait_seconds",
			Help:    "Time from a record's append to its durability (or failure), per call that waits for it: a write's forwarding, and a read's answer, wait for this.",
			Buckets: durationBuckets,
		}),
		logWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_log_batch_write_seconds",
			Help:    "Time the audit log's writer spent on one batch: with the local journal, its write and fdatasync; with a shared PostgreSQL store, its transaction.",
			Buckets: durationBuckets,
		}),
		logBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "airlock_log_batch_calls",
			Help:    "Appends and other log operations committed together in one batch (group commit).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}),
		logFailed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_log_failed_batches_total",
			Help: "Batches the audit log could not make durable; their calls were refused (fail closed).",
		}),
		logBatches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "airlock_log_batches_total",
			Help: "Batches the audit log's writer finished, durable or failed.",
		}),
		sessionsStarted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_gateway_sessions_started_total",
			Help: "Gateway sessions (connections or streams of calls under a grant) whose start was recorded, by gateway.",
		}, []string{"gateway"}),
		sessionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "airlock_gateway_sessions_open",
			Help: "Gateway sessions started and not yet ended, by gateway.",
		}, []string{"gateway"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_gateway_calls_total",
			Help: "Calls and statements recorded by the gateways, by gateway and outcome (allowed, denied by the grant's scope, or refused by the upstream for lack of privilege after the scope allowed it).",
		}, []string{"gateway", "outcome"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airlock_gateway_rejected_total",
			Help: "Attempts a gateway refused before any session could start (unknown or ended credentials, bad signatures), by gateway.",
		}, []string{"gateway"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.logWait, m.logWrite, m.logBatch, m.logFailed, m.logBatches,
		m.sessionsStarted, m.sessionsOpen, m.calls, m.rejected,
	)
	m.byGateway = map[string]*gatewayMetrics{}
	for _, g := range []string{"aws", "postgres", "other"} {
		m.byGateway[g] = &gatewayMetrics{
			started: m.sessionsStarted.WithLabelValues(g), rejected: m.rejected.WithLabelValues(g),
			open:    m.sessionsOpen.WithLabelValues(g),
			allowed: m.calls.WithLabelValues(g, "allowed"), denied: m.calls.WithLabelValues(g, "denied"),
			refused: m.calls.WithLabelValues(g, "refused"),
		}
	}
	return m
}

// gateway is the metrics of gateway g: "aws", "postgres", or "other" for
// a gateway added without updating this list, so that no label value is
// ever the client's to choose.
func (m *Metrics) gateway(g string) *gatewayMetrics {
	if gm, ok := m.byGateway[g]; ok && g != "other" {
		return gm
	}
	return m.byGateway["other"]
}

// SessionStarted, SessionEnded, CallRecorded and Rejected make Metrics the
// gateways' recorder's observer (sessions.Observer).
func (m *Metrics) SessionStarted(g string) {
	gm := m.gateway(g)
	gm.started.Inc()
	gm.open.Inc()
}

func (m *Metrics) SessionEnded(g string) { m.gateway(g).open.Dec() }

func (m *Metrics) CallRecorded(g string, allowed bool) {
	if allowed {
		m.gateway(g).allowed.Inc()
	} else {
		m.gateway(g).denied.Inc()
	}
}

// CallRefused counts a call the upstream refused for lack of privilege
// (PostgreSQL's 42501) under outcome "refused", not "allowed": the review
// counts it as denied, and an operator's allowed rate must not include
// statements that did nothing. Apart from "denied": the grant's scope
// allowed it, the database's own privileges refused it.
func (m *Metrics) CallRefused(g string) { m.gateway(g).refused.Inc() }

func (m *Metrics) Rejected(g string) { m.gateway(g).rejected.Inc() }

// ObserveBatch records one of the log's batches; it is the log's
// Options.OnBatch.
func (m *Metrics) ObserveBatch(b auditlog.BatchStats) {
	m.logBatches.Inc()
	if b.Failed {
		m.logFailed.Inc()
	}
	m.logBatch.Observe(float64(b.Ops))
	m.logWrite.Observe(b.Write.Seconds())
	for _, w := range b.Waits {
		m.logWait.Observe(w.Seconds())
	}
}

// LogSize registers a gauge of the log's entries, read from size at each
// scrape.
func (m *Metrics) LogSize(size func() int64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "airlock_log_entries",
		Help: "Entries in the audit log, as this process knows it.",
	}, func() float64 { return float64(size()) }))
}

// Handler serves the registry in Prometheus's exposition formats. It does
// not authenticate: the API wraps it.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
