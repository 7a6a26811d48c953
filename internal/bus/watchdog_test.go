package bus

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/devbus"
	"wbagent/internal/secret"
	"wbagent/internal/telemetry"
)

// stallRelay forwards TCP to a backend; Stall makes every connection open
// now go silent in both directions, without closing it or sending an
// error, while new connections pass. It is the failure the watchdog is
// for: the SDK sees neither a detach nor an error.
type stallRelay struct {
	ln    net.Listener
	mu    sync.Mutex
	open  []chan struct{}
	quit  chan struct{}
	conns []net.Conn
}

func startStallRelay(t *testing.T, backend string) *stallRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &stallRelay{ln: ln, quit: make(chan struct{})}
	t.Cleanup(r.close)
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				a.Close()
				continue
			}
			stalled := make(chan struct{})
			r.mu.Lock()
			r.open = append(r.open, stalled)
			r.conns = append(r.conns, a, b)
			r.mu.Unlock()
			go r.pipe(a, b, stalled)
			go r.pipe(b, a, stalled)
		}
	}()
	return r
}

func (r *stallRelay) pipe(dst, src net.Conn, stalled chan struct{}) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		select {
		case <-stalled:
			<-r.quit // swallow everything, answer nothing, close nothing
			return
		default:
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// Stall silences the connections open now.
func (r *stallRelay) Stall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.open {
		close(s)
	}
	r.open = nil
}

func (r *stallRelay) close() {
	r.ln.Close()
	close(r.quit)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func TestWatchdogRebuildsASilentConnection(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "q", LockDuration: 3 * time.Second})
	relay := startStallRelay(t, srv.Addr())
	cs := strings.Replace(srv.ConnectionString().Reveal(), srv.Addr(), relay.ln.Addr().String(), 1)
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	h := &testHandler{}
	const watchdog = 3 * time.Second
	w, err := NewWatched(Connection{ConnectionString: secret.FromString(cs), Retry: fastRetry}, h,
		Options{Queue: "q", MaxConcurrent: 2, SettleTimeout: 2 * time.Second, Metrics: m, Logger: zap.New(core)}, watchdog)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Stop(ctx)
	}()
	sender := newTestClient(t, srv)
	s, err := sender.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte(body)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(n int, within time.Duration) time.Duration {
		start := time.Now()
		for h.count() < n {
			if time.Since(start) > within {
				t.Fatalf("%d of %d messages handled after %s; log: %v", h.count(), n, within, logs.All())
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	send("before")
	waitFor(1, 30*time.Second)
	// An idle bus that answers is not stalled: no rebuild while it idles
	// for more than two periods.
	time.Sleep(2*watchdog + time.Second)
	if got := testutil.ToFloat64(metricRebuilds(t, reg)); got != 0 {
		t.Fatalf("the watchdog rebuilt an idle, healthy connection %v times", got)
	}

	relay.Stall()
	send("during")
	took := waitFor(2, 2*time.Minute)
	t.Logf("delivery recovered %s after the connection went silent (watchdog %s, lock duration 3s)", took.Round(10*time.Millisecond), watchdog)
	if got := testutil.ToFloat64(metricRebuilds(t, reg)); got < 1 {
		t.Fatalf("bus_watchdog_rebuilds_total = %v, want at least 1", got)
	}
	if logs.FilterMessageSnippet("rebuilding the connection and receivers").Len() == 0 {
		t.Fatal("the rebuild was not logged")
	}
	if err := w.Ready(); err != nil {
		t.Fatalf("not ready after the rebuild: %v", err)
	}
}

func metricRebuilds(t *testing.T, reg *prometheus.Registry) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wbagent_bus_watchdog_rebuilds_total" {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(mf.GetMetric()[0].GetCounter().GetValue())
			return g
		}
	}
	t.Fatal("wbagent_bus_watchdog_rebuilds_total is not registered")
	return nil
}
