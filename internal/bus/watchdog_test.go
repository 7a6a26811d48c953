package bus

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/secret"
	"wbagent/internal/telemetry"
	"wbagent/internal/writeback"
)

// TestWatchdogRebuildsASilentConnection: devbus silences the agent's
// connection (no detach, no error, heartbeats only, as SDK receivers have
// been seen to stop); the watchdog must rebuild the client and receive
// again, and must not rebuild an idle connection that still answers.
func TestWatchdogRebuildsASilentConnection(t *testing.T) {
	testkit.ForQueueKinds(t, watchdogRecovers)
}

func watchdogRecovers(t *testing.T, sessions bool) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "q", RequiresSession: sessions, LockDuration: 3 * time.Second})
	cs := srv.ConnectionString().Reveal()
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	h := &testHandler{}
	const watchdog = 3 * time.Second
	w := startWatched(t, Connection{ConnectionString: secret.FromString(cs), Retry: fastRetry}, h,
		Options{Queue: "q", Sessions: sessions, MaxConcurrent: 2, SessionIdleTimeout: 500 * time.Millisecond, SettleTimeout: 2 * time.Second, AcceptTimeout: time.Second, ErrorBackoff: 50 * time.Millisecond, Metrics: m, Logger: zap.New(core)}, watchdog)
	sender := newTestClient(t, srv)
	s, err := sender.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	send := func(body string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		m := &azservicebus.Message{Body: []byte(body)}
		if sessions {
			m.SessionID = &body
		}
		if err := s.SendMessage(ctx, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(n int, within time.Duration) time.Duration {
		start := time.Now()
		for h.count() < n {
			if time.Since(start) > within {
				var msgs []string
				for _, e := range logs.All() {
					msgs = append(msgs, e.Message)
				}
				t.Fatalf("%d of %d messages handled after %s; warnings: %q", h.count(), n, within, msgs)
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

	if n, err := srv.StallReceivers("q"); err != nil || n == 0 {
		t.Fatalf("stalled %d connections: %v", n, err)
	}
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

// TestWatchdogLeavesLongWritebacksAlone: with every slot taken by a
// writeback longer than the period, a plain queue's consumer asks the
// broker nothing; that silence is not a stall.
func TestWatchdogLeavesLongWritebacksAlone(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "q", LockDuration: 2 * time.Second})
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	const watchdog = 1500 * time.Millisecond
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		select {
		case <-time.After(3 * watchdog):
		case <-ctx.Done():
		}
		return writeback.Outcome{Settle: writeback.Complete, RequestID: d.Message.MessageID}
	}}
	startWatched(t, Connection{ConnectionString: srv.ConnectionString(), Retry: fastRetry}, h,
		Options{Queue: "q", MaxConcurrent: 1, SettleTimeout: 2 * time.Second, SessionIdleTimeout: 500 * time.Millisecond, AcceptTimeout: time.Second, ErrorBackoff: 50 * time.Millisecond, Metrics: m}, watchdog)
	s, err := newTestClient(t, srv).NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte("long")}, nil); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, time.Minute, "the long writeback to be completed", func() bool {
		st, _ := srv.Stats("q")
		return h.count() > 0 && st.Active == 0
	})
	if got := testutil.ToFloat64(metricRebuilds(t, reg)); got != 0 {
		t.Fatalf("the watchdog rebuilt the connection %v times during a long writeback", got)
	}
	if h.count() != 1 {
		t.Fatalf("handled %d times, want once", h.count())
	}
}

// startWatched starts a watched consumer that stops when the test ends.
func startWatched(t *testing.T, conn Connection, h Handler, o Options, watchdog time.Duration) *Watched {
	t.Helper()
	w, err := NewWatched(conn, h, o, watchdog)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.StopAtCleanup(t, 10*time.Second, w.Stop)
	return w
}
