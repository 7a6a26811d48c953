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
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	queueWait     prometheus.Histogram
	directoryTime *prometheus.HistogramVec
	retries       *prometheus.CounterVec
	deadLetters   *prometheus.CounterVec
	inFlight      prometheus.Gauge
	lockRenewals  *prometheus.CounterVec
	failovers     prometheus.Counter
	reconnects    prometheus.Counter
	auditFailures prometheus.Counter
	stateRefused  prometheus.Counter
	intakePaused  prometheus.Gauge
	// watchdogRebuilds is registered by registerWatchdog.
	watchdogRebuilds prometheus.Counter
}

// NewMetrics creates the agent's metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	// Directory calls take milliseconds to seconds; queue waits can reach
	// the request lifetime (minutes).
	dirBuckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	waitBuckets := []float64{.01, .05, .1, .5, 1, 5, 15, 30, 60, 120, 300, 900}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "requests_total",
			Help: "Requests finished, by op and result code (protocol v1 §6).",
		}, []string{"op", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "request_duration_seconds",
			Help:    "Time from receiving a request to settling it, by op.",
			Buckets: dirBuckets,
		}, []string{"op"}),
		queueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "queue_wait_seconds",
			Help:    "Time a request waited on the queue before the agent received it.",
			Buckets: waitBuckets,
		}),
		directoryTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "directory_duration_seconds",
			Help:    "Time spent in the directory (resolve, checks, write) per request, by op.",
			Buckets: dirBuckets,
		}, []string{"op"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "directory_retries_total",
			Help: "Transient directory failures retried, by op.",
		}, []string{"op"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "dead_letters_total",
			Help: "Messages dead-lettered, by reason (protocol v1 §8).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "requests_in_flight",
			Help: "Writebacks being processed now.",
		}),
		lockRenewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "lock_renewals_total",
			Help: "Message and session lock renewals, by result (ok, failed).",
		}, []string{"result"}),
		failovers: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "directory_failovers_total",
			Help: "Times the agent switched to another domain controller.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "bus_reconnects_total",
			Help: "Service Bus connections re-established.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "audit_write_failures_total",
			Help: "Audit lines that could not be written (their messages were not completed).",
		}),
	}
	m.stateRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Name: "session_state_refused_total",
		Help: "Session-state records that did not authenticate and were ignored (forged, altered, or written without a MAC).",
	})
	m.intakePaused = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Name: "intake_paused",
		Help: "1 while the agent takes no message because its audit or state disk cannot be written.",
	})
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.queueWait, m.directoryTime, m.retries, m.deadLetters, m.inFlight, m.lockRenewals, m.failovers, m.reconnects, m.auditFailures, m.stateRefused, m.intakePaused} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w (are the metrics created twice on one registry?)", err)
		}
	}
	if err := m.registerWatchdog(reg); err != nil {
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
