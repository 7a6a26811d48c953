package telemetry

import (
	"fmt"
	"sync"
	"time"

	"wbagent/internal/wire"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "wbagent"

// Label values are folded onto these sets; anything else counts as "other".
// They come from the wire vocabulary, so a code it adds is a label here.
var (
	ops     = opNames(wire.Ops)
	codes   = wire.Codes
	reasons = wire.DeadLetterReasons
)

func opNames(ops []wire.Op) []string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return s
}

const other = "other"

func fold(v string, known []string) string {
	for _, k := range known {
		if v == k {
			return v
		}
	}
	return other
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors; the agent's metrics are added by NewMetrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Metrics are the agent's own metrics. Its methods are safe for concurrent
// use, and a nil *Metrics records nothing, so packages can be used (and
// tested) without metrics.
type Metrics struct {
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	queueWait        prometheus.Histogram
	directoryTime    *prometheus.HistogramVec
	retries          *prometheus.CounterVec
	deadLetters      *prometheus.CounterVec
	inFlight         prometheus.Gauge
	lockRenewals     *prometheus.CounterVec
	failovers        prometheus.Counter
	reconnects       prometheus.Counter
	auditFailures    prometheus.Counter
	stateRefused     prometheus.Counter
	intakePaused     prometheus.Gauge
	watchdogRebuilds prometheus.Counter
}

// NewMetrics creates the agent's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	// Directory calls take milliseconds to seconds; queue waits can reach
	// the request lifetime (minutes).
	dirBuckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	waitBuckets := []float64{.01, .05, .1, .5, 1, 5, 15, 30, 60, 120, 300, 900}
	b := &builder{}
	m := &Metrics{
		requests: b.counterVec("requests_total",
			"Requests finished, by op and result code (protocol v1 §6).", "op", "code"),
		duration: b.histogramVec("request_duration_seconds",
			"Time from receiving a request to settling it, by op.", dirBuckets, "op"),
		queueWait: b.histogram("queue_wait_seconds",
			"Time a request waited on the queue before the agent received it.", waitBuckets),
		directoryTime: b.histogramVec("directory_duration_seconds",
			"Time spent in the directory (resolve, checks, write) per request, by op.", dirBuckets, "op"),
		retries: b.counterVec("directory_retries_total",
			"Transient directory failures retried, by op.", "op"),
		deadLetters: b.counterVec("dead_letters_total",
			"Messages dead-lettered, by reason (protocol v1 §8).", "reason"),
		inFlight: b.gauge("requests_in_flight",
			"Writebacks being processed now."),
		lockRenewals: b.counterVec("lock_renewals_total",
			"Message and session lock renewals, by result (ok, failed).", "result"),
		failovers: b.counter("directory_failovers_total",
			"Times the agent switched to another domain controller."),
		reconnects: b.counter("bus_reconnects_total",
			"Service Bus connections re-established."),
		auditFailures: b.counter("audit_write_failures_total",
			"Audit lines that could not be written (their messages were not completed)."),
		stateRefused: b.counter("session_state_refused_total",
			"Session-state records that did not authenticate and were ignored (forged, altered, or written without a MAC)."),
		intakePaused: b.gauge("intake_paused",
			"1 while the agent takes no message because its audit or state disk cannot be written."),
		watchdogRebuilds: b.counter("bus_watchdog_rebuilds_total",
			"Times the Service Bus connection and receivers were rebuilt because the broker gave no answer for servicebus.watchdog."),
	}
	if err := b.register(reg); err != nil {
		return nil, err
	}
	// Known series start at zero, so rate() and alerts see them before the
	// first event.
	for _, op := range ops {
		for _, code := range codes {
			m.requests.WithLabelValues(op, code)
		}
		m.retries.WithLabelValues(op)
	}
	for _, r := range reasons {
		m.deadLetters.WithLabelValues(r)
	}
	m.lockRenewals.WithLabelValues("ok")
	m.lockRenewals.WithLabelValues("failed")
	return m, nil
}

// Request counts a finished request and its time from receipt to settlement.
func (m *Metrics) Request(op, code string, took time.Duration) {
	if m == nil {
		return
	}
	op = fold(op, ops)
	m.requests.WithLabelValues(op, fold(code, codes)).Inc()
	m.duration.WithLabelValues(op).Observe(took.Seconds())
}

// QueueWait records how long a message waited on the queue.
func (m *Metrics) QueueWait(d time.Duration) {
	if m == nil {
		return
	}
	m.queueWait.Observe(max(d, 0).Seconds())
}

// DirectoryTime records the time one request spent in the directory.
func (m *Metrics) DirectoryTime(op string, d time.Duration) {
	if m == nil {
		return
	}
	m.directoryTime.WithLabelValues(fold(op, ops)).Observe(d.Seconds())
}

// Retry counts one retried transient directory failure.
func (m *Metrics) Retry(op string) {
	if m == nil {
		return
	}
	m.retries.WithLabelValues(fold(op, ops)).Inc()
}

// DeadLetter counts one dead-lettered message.
func (m *Metrics) DeadLetter(reason string) {
	if m == nil {
		return
	}
	m.deadLetters.WithLabelValues(fold(reason, reasons)).Inc()
}

// InFlight counts a writeback as running and returns the function that
// ends it: `defer m.InFlight()()`.
func (m *Metrics) InFlight() (done func()) {
	if m == nil {
		return func() {}
	}
	m.inFlight.Inc()
	return sync.OnceFunc(m.inFlight.Dec)
}

// LockRenewal counts a lock renewal and whether it worked.
func (m *Metrics) LockRenewal(ok bool) {
	if m == nil {
		return
	}
	result := "ok"
	if !ok {
		result = "failed"
	}
	m.lockRenewals.WithLabelValues(result).Inc()
}

// DirectoryFailover counts a switch to another domain controller.
func (m *Metrics) DirectoryFailover() {
	if m != nil {
		m.failovers.Inc()
	}
}

// BusReconnect counts a re-established Service Bus connection.
func (m *Metrics) BusReconnect() {
	if m != nil {
		m.reconnects.Inc()
	}
}

// AuditWriteFailure counts an audit line that could not be written.
func (m *Metrics) AuditWriteFailure() {
	if m != nil {
		m.auditFailures.Inc()
	}
}

// SessionStateRefused counts n session-state records that did not
// authenticate.
func (m *Metrics) SessionStateRefused(n int) {
	if m != nil {
		m.stateRefused.Add(float64(n))
	}
}

// IntakePaused sets whether intake is paused for a full disk.
func (m *Metrics) IntakePaused(paused bool) {
	if m != nil {
		v := 0.0
		if paused {
			v = 1
		}
		m.intakePaused.Set(v)
	}
}

// builder makes the agent's metrics in its namespace and keeps each one,
// so that registering them cannot leave one out.
type builder struct{ made []prometheus.Collector }

func (b *builder) keep(c prometheus.Collector) { b.made = append(b.made, c) }

func (b *builder) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help})
	b.keep(c)
	return c
}

func (b *builder) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: name, Help: help}, labels)
	b.keep(c)
	return c
}

func (b *builder) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: name, Help: help})
	b.keep(g)
	return g
}

func (b *builder) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets})
	b.keep(h)
	return h
}

func (b *builder) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: namespace, Name: name, Help: help, Buckets: buckets}, labels)
	b.keep(h)
	return h
}

func (b *builder) register(reg prometheus.Registerer) error {
	for _, c := range b.made {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register metrics: %w (are the metrics created twice on one registry?)", err)
		}
	}
	return nil
}
