package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Request("reset", "ok", 40*time.Millisecond)
	m.Request("reset", "ok", 60*time.Millisecond)
	m.Request("../../etc", "no_such_code", time.Second) // folded, not a new series
	m.QueueWait(2 * time.Second)
	m.QueueWait(-time.Second) // clock skew between bus and agent: counted as 0
	m.DirectoryTime("change", 30*time.Millisecond)
	m.Retry("change")
	m.DeadLetter("unauthenticated")
	m.DeadLetter("whatever")
	m.LockRenewal(true)
	m.LockRenewal(false)
	m.LockRenewal(false)
	m.DirectoryFailover()
	m.BusReconnect()
	m.AuditWriteFailure()
	done := m.InFlight()
	m.InFlight()()

	checks := []struct {
		c    prometheus.Collector
		want float64
	}{
		{m.requests.WithLabelValues("reset", "ok"), 2},
		{m.requests.WithLabelValues("other", "other"), 1},
		{m.requests.WithLabelValues("unlock", "expired"), 0},
		{m.retries.WithLabelValues("change"), 1},
		{m.deadLetters.WithLabelValues("unauthenticated"), 1},
		{m.deadLetters.WithLabelValues("other"), 1},
		{m.lockRenewals.WithLabelValues("ok"), 1},
		{m.lockRenewals.WithLabelValues("failed"), 2},
		{m.failovers, 1},
		{m.reconnects, 1},
		{m.auditFailures, 1},
		{m.inFlight, 1},
	}
	for i, c := range checks {
		if got := testutil.ToFloat64(c.c); got != c.want {
			t.Errorf("check %d: %v; want %v", i, got, c.want)
		}
	}
	done()
	done() // ending twice does not count twice
	if got := testutil.ToFloat64(m.inFlight); got != 0 {
		t.Errorf("in flight after done = %v; want 0", got)
	}
	if n := testutil.CollectAndCount(m.requests); n != len(ops)*len(codes)+1 {
		t.Errorf("requests_total has %d series; want the %d known ones plus other", n, len(ops)*len(codes))
	}

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "wbagent_requests_total", "wbagent_request_duration_seconds", "wbagent_queue_wait_seconds", "wbagent_directory_duration_seconds", "wbagent_directory_retries_total", "wbagent_dead_letters_total", "wbagent_requests_in_flight", "wbagent_lock_renewals_total", "wbagent_directory_failovers_total", "wbagent_bus_reconnects_total", "wbagent_audit_write_failures_total"} {
		if !names[want] {
			t.Errorf("registry lacks %s", want)
		}
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice on one registry succeeded")
	}
}

func TestNilMetricsRecordNothing(t *testing.T) {
	var m *Metrics
	m.Request("reset", "ok", time.Second)
	m.QueueWait(time.Second)
	m.DirectoryTime("reset", time.Second)
	m.Retry("reset")
	m.DeadLetter("malformed")
	m.InFlight()()
	m.LockRenewal(true)
	m.DirectoryFailover()
	m.BusReconnect()
	m.AuditWriteFailure()
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newServer builds a server; a zero CheckTimeout in opts is a second.
func newServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	if opts.CheckTimeout == 0 {
		opts.CheckTimeout = time.Second
	}
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The config owns the check timeout: without one, NewServer refuses
// rather than pick a value nobody chose.
func TestServerRefusesZeroCheckTimeout(t *testing.T) {
	if _, err := NewServer(ServerOptions{Addr: "127.0.0.1:0"}); err == nil || !strings.Contains(err.Error(), "positive duration") {
		t.Fatalf("NewServer without a check timeout = %v; want an error asking for a positive duration", err)
	}
}

func TestEndpoints(t *testing.T) {
	reg := NewRegistry()
	m, _ := NewMetrics(reg)
	m.Request("unlock", "ok", time.Millisecond)
	s := newServer(t, ServerOptions{Gatherer: reg, CheckTimeout: 100 * time.Millisecond})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	if code, body := get(t, ts.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, body := get(t, ts.URL+"/readyz"); code != 200 || !strings.Contains(body, `"status": "ready"`) {
		t.Errorf("/readyz with no checks = %d %s", code, body)
	}
	code, body := get(t, ts.URL+"/metrics")
	if code != 200 || !strings.Contains(body, `wbagent_requests_total{code="ok",op="unlock"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, lacks the request counter or Go collector:\n%.400s", code, body)
	}
	if code, _ := get(t, ts.URL+"/nothing"); code != 404 {
		t.Errorf("/nothing = %d; want 404", code)
	}

	s.AddCheck("directory", func(context.Context) error { return nil })
	s.AddCheck("bus", func(context.Context) error { return errors.New("no connection to sb://x") })
	unblock := make(chan struct{})
	defer close(unblock)
	s.AddCheck("stuck", func(context.Context) error { <-unblock; return nil }) // ignores its context
	code, body = get(t, ts.URL+"/readyz")
	var rep ReadyReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("/readyz body %q: %v", body, err)
	}
	if code != 503 || rep.Status != "not ready" || strings.Join(rep.Failing, ",") != "bus,stuck" ||
		rep.Checks["directory"] != "ok" || !strings.Contains(rep.Checks["bus"], "no connection") || !strings.Contains(rep.Checks["stuck"], "no answer within") {
		t.Fatalf("/readyz = %d %+v; want 503 naming bus and stuck", code, rep)
	}

	s.AddCheck("bus", func(context.Context) error { return nil })
	s.AddCheck("stuck", func(context.Context) error { return nil })
	if code, _ := get(t, ts.URL+"/readyz"); code != 200 {
		t.Errorf("/readyz after the checks recovered = %d; want 200", code)
	}
}

func TestStartAndShutdown(t *testing.T) {
	s := newServer(t, ServerOptions{Addr: "127.0.0.1:0"})
	if s.Addr() != "" {
		t.Fatal("Addr before Start is not empty")
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, "http://"+s.Addr()+"/healthz"); code != 200 {
		t.Fatalf("/healthz = %d", code)
	}
	busy := newServer(t, ServerOptions{Addr: s.Addr()})
	if err := busy.Start(); err == nil || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("Start on a taken port = %v; want an error naming http.listen", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get("http://" + s.Addr() + "/healthz"); err == nil {
		t.Fatal("server still answers after Shutdown")
	}
	if err := newServer(t, ServerOptions{}).Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown of a server never started: %v", err)
	}
}
