// Package metrics is gpgate's Prometheus instrumentation
// (github.com/prometheus/client_golang): requests by route pattern and
// status with latency, the audit log's queue, commits and batch sizes and
// the latency of a durable write as a request sees it, token issuance and
// refusals by reason, refused authentications, rate-limit refusals, and
// per-practice source latency, errors and circuit state.
//
// Labels are bounded sets only: route patterns (never paths), methods,
// status codes, practice ODS codes, refusal reasons from fixed lists. No
// label ever carries a patient identifier, a client-supplied string or a
// token.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds gpgate's collectors in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests    *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	inflight    prometheus.Gauge
	tokens      *prometheus.CounterVec
	authRefused *prometheus.CounterVec
	rateLimited *prometheus.CounterVec
	auditWrite  prometheus.Histogram
	auditFail   prometheus.Counter
	srcLatency  *prometheus.HistogramVec
	srcErrors   *prometheus.CounterVec
}

// New makes the collectors and registers them with the Go runtime and
// process collectors (memory, goroutines, file descriptors).
func New(version string) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpgate_http_requests_total",
		Help: "HTTP requests answered, by method, route pattern and status."}, []string{"method", "route", "status"})
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gpgate_http_request_duration_seconds",
		Help: "Time to answer HTTP requests, by method and route pattern.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)},
		[]string{"method", "route"})
	m.inflight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "gpgate_http_requests_in_flight", Help: "HTTP requests being answered."})
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpgate_tokens_total",
		Help: "Token requests at the token endpoint, by outcome (issued, refused) and refusal reason."}, []string{"outcome", "reason"})
	m.authRefused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpgate_auth_refused_total",
		Help: "Requests to the FHIR API refused at authentication, by reason (no-token, invalid-token, ...)."}, []string{"reason"})
	m.rateLimited = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpgate_rate_limited_total",
		Help: "Requests refused by a rate or concurrency limit, by limit (address, client, concurrency)."}, []string{"limit"})
	m.auditWrite = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gpgate_audit_record_duration_seconds",
		Help:    "Time for an audit entry to become durable (queue, group commit, fsync) as the request sees it.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.auditFail = prometheus.NewCounter(prometheus.CounterOpts{Name: "gpgate_audit_record_failures_total",
		Help: "Audit entries that could not be made durable (each failed its request closed)."})
	m.srcLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gpgate_source_fetch_duration_seconds",
		Help: "Time to fetch a record from a practice source, by practice ODS code.", Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12)},
		[]string{"practice"})
	m.srcErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gpgate_source_errors_total",
		Help: "Failed record fetches by practice ODS code and error code."}, []string{"practice", "code"})
	build := prometheus.NewGauge(prometheus.GaugeOpts{Name: "gpgate_build_info", Help: "gpgate's version.",
		ConstLabels: prometheus.Labels{"version": version}})
	build.Set(1)
	m.reg.MustRegister(m.requests, m.latency, m.inflight, m.tokens, m.authRefused, m.rateLimited, m.auditWrite, m.auditFail,
		m.srcLatency, m.srcErrors, build,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the collectors are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest counts an answered request (rest.Observer).
func (m *Metrics) ObserveRequest(method, route string, status int, elapsed time.Duration) {
	m.requests.WithLabelValues(method, route, statusLabel(status)).Inc()
	m.latency.WithLabelValues(method, route).Observe(elapsed.Seconds())
}

// InFlight tracks requests being answered: call the returned func when done.
func (m *Metrics) InFlight() func() {
	m.inflight.Inc()
	return m.inflight.Dec
}

// TokenIssued counts an issued token.
func (m *Metrics) TokenIssued() { m.tokens.WithLabelValues("issued", "").Inc() }

// TokenRefused counts a refused token request (reason from a fixed set).
func (m *Metrics) TokenRefused(reason string) { m.tokens.WithLabelValues("refused", reason).Inc() }

// AuthRefused counts a request refused at authentication.
func (m *Metrics) AuthRefused(reason string) { m.authRefused.WithLabelValues(reason).Inc() }

// RateLimited counts a request refused by a limit.
func (m *Metrics) RateLimited(limit string) { m.rateLimited.WithLabelValues(limit).Inc() }

// AuditRecorded observes a durable audit write's latency, or a failure.
func (m *Metrics) AuditRecorded(elapsed time.Duration, err error) {
	if err != nil {
		m.auditFail.Inc()
		return
	}
	m.auditWrite.Observe(elapsed.Seconds())
}

// SourceFetched observes a record fetch from a practice; code is "" on
// success, else the coded error.
func (m *Metrics) SourceFetched(practice string, elapsed time.Duration, code string) {
	m.srcLatency.WithLabelValues(practice).Observe(elapsed.Seconds())
	if code != "" {
		m.srcErrors.WithLabelValues(practice, code).Inc()
	}
}

// AuditStats is what the audit log reports of itself.
type AuditStats struct {
	QueueDepth             int
	Entries, Commits       uint64
	LastBatch              int
	Head, LastCheckpoint   uint64
	Checkpoints            uint64
	HeadExportErrors       uint64
	ForwarderLag           map[string]uint64 // by forwarder: entries not yet delivered
	ForwarderFailures      map[string]uint64
	RefusalsPendingFlushes int
}

// WatchAudit registers collectors read from stats at each scrape.
func (m *Metrics) WatchAudit(stats func() AuditStats) {
	m.reg.MustRegister(&auditCollector{stats: stats})
}

// WatchCircuits registers the per-practice circuit state (closed,
// half-open, open) read at each scrape: 1 for the current state.
func (m *Metrics) WatchCircuits(states func() map[string]string) {
	m.reg.MustRegister(&circuitCollector{states: states})
}

func statusLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	b := []byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)}
	return string(b)
}

var (
	descQueue     = prometheus.NewDesc("gpgate_audit_queue_depth", "Audit entries waiting for the group-commit writer.", nil, nil)
	descEntries   = prometheus.NewDesc("gpgate_audit_entries_total", "Audit entries committed by this process.", nil, nil)
	descCommits   = prometheus.NewDesc("gpgate_audit_commits_total", "Audit group commits (one fsync each); entries/commits is the mean batch size.", nil, nil)
	descBatch     = prometheus.NewDesc("gpgate_audit_last_batch_size", "Entries in the newest audit commit.", nil, nil)
	descHead      = prometheus.NewDesc("gpgate_audit_head_sequence", "Sequence number of the newest audit entry.", nil, nil)
	descCP        = prometheus.NewDesc("gpgate_audit_checkpoints_total", "Signed audit checkpoints written by this process.", nil, nil)
	descCPSeq     = prometheus.NewDesc("gpgate_audit_checkpoint_sequence", "Sequence number the newest signed checkpoint covers.", nil, nil)
	descHeadErr   = prometheus.NewDesc("gpgate_audit_head_export_errors_total", "Failed exports of the signed audit head.", nil, nil)
	descFwdLag    = prometheus.NewDesc("gpgate_audit_forwarder_lag", "Audit entries a forwarder has not yet delivered.", []string{"forwarder"}, nil)
	descFwdFail   = prometheus.NewDesc("gpgate_audit_forwarder_failures_total", "Failed deliveries of a forwarder (each retried).", []string{"forwarder"}, nil)
	descRefusals  = prometheus.NewDesc("gpgate_refusals_pending", "Refused-authentication aggregates waiting for their audit entry.", nil, nil)
	descCircuit   = prometheus.NewDesc("gpgate_source_circuit_state", "Circuit state of a practice source (1 for the current state).", []string{"practice", "state"}, nil)
	circuitStates = []string{"closed", "half-open", "open"}
)

type auditCollector struct{ stats func() AuditStats }

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descQueue, descEntries, descCommits, descBatch, descHead, descCP, descCPSeq, descHeadErr, descFwdLag, descFwdFail, descRefusals} {
		ch <- d
	}
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	n := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, l...)
	}
	g(descQueue, float64(s.QueueDepth))
	n(descEntries, float64(s.Entries))
	n(descCommits, float64(s.Commits))
	g(descBatch, float64(s.LastBatch))
	g(descHead, float64(s.Head))
	n(descCP, float64(s.Checkpoints))
	g(descCPSeq, float64(s.LastCheckpoint))
	n(descHeadErr, float64(s.HeadExportErrors))
	for name, v := range s.ForwarderLag {
		g(descFwdLag, float64(v), name)
	}
	for name, v := range s.ForwarderFailures {
		n(descFwdFail, float64(v), name)
	}
	g(descRefusals, float64(s.RefusalsPendingFlushes))
}

type circuitCollector struct{ states func() map[string]string }

func (c *circuitCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descCircuit }

func (c *circuitCollector) Collect(ch chan<- prometheus.Metric) {
	for practice, state := range c.states() {
		for _, s := range circuitStates {
			v := 0.0
			if s == state {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descCircuit, prometheus.GaugeValue, v, practice, s)
		}
	}
}
