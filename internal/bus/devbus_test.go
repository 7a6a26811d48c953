package bus

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap/zaptest"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/protocol"
	"wbagent/internal/writeback"
)

// These tests run the consumer with the real SDK against devbus on
// loopback.

var fastRetry = azservicebus.RetryOptions{MaxRetries: 5, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}

func startDevbus(t *testing.T, queues ...devbus.QueueConfig) *devbus.Server {
	t.Helper()
	if testing.Short() {
		t.Skip("bus integration test against devbus (skipped with -short)")
	}
	srv, err := devbus.Start(context.Background(), devbus.Options{Queues: queues, AcceptSessionTimeout: time.Second})
	if err != nil {
		t.Fatalf("start devbus: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func newTestClient(t *testing.T, srv *devbus.Server) *azservicebus.Client {
	t.Helper()
	c, err := NewClient(Connection{ConnectionString: srv.ConnectionString(), Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	testkit.StopAtCleanup(t, 5*time.Second, c.Close)
	return c
}

// testHandler decides with fn and keeps every delivery it saw.
type testHandler struct {
	mu          sync.Mutex
	fn          func(ctx context.Context, d writeback.Delivery) writeback.Outcome
	seen        []writeback.Delivery
	inFlight    int
	maxInFlight int
}

func (h *testHandler) Handle(ctx context.Context, d writeback.Delivery) writeback.Outcome {
	h.mu.Lock()
	h.seen = append(h.seen, d)
	h.inFlight++
	h.maxInFlight = max(h.maxInFlight, h.inFlight)
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.inFlight--
		h.mu.Unlock()
	}()
	if h.fn == nil {
		return writeback.Outcome{Settle: writeback.Complete, RequestID: d.Message.MessageID}
	}
	return h.fn(ctx, d)
}

func (h *testHandler) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.seen)
}

func (h *testHandler) deliveries() []writeback.Delivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]writeback.Delivery(nil), h.seen...)
}

func startConsumer(t *testing.T, client *azservicebus.Client, h Handler, o Options) *Consumer {
	t.Helper()
	o.Logger = zaptest.NewLogger(t)
	if o.SettleTimeout == 0 {
		o.SettleTimeout = 3 * time.Second
	}
	o.SessionIdleTimeout = 300 * time.Millisecond
	o.AcceptTimeout = 2 * time.Second
	o.ErrorBackoff = 50 * time.Millisecond
	c, err := New(client, h, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.StopAtCleanup(t, 5*time.Second, c.Stop)
	return c
}

// sendN sends n messages to queue; session, when set, names each message's
// session from its number.
func sendN(t *testing.T, client *azservicebus.Client, queue string, n int, session func(i int) string) {
	t.Helper()
	sendNumbered(t, client, queue, n, session, 1)
}

// sendNumbered sends messages m-000 … m-<n-1> (body and property "n" the
// number), each tried up to tries times, 20 ms apart: a test that drops
// connections on purpose must not fail on a send the drop cut.
func sendNumbered(t *testing.T, client *azservicebus.Client, queue string, n int, session func(i int) string, tries int) {
	t.Helper()
	s, err := client.NewSender(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m-%03d", i)
		m := &azservicebus.Message{MessageID: &id, Body: []byte(strconv.Itoa(i)), ApplicationProperties: map[string]any{"n": int64(i)}}
		if session != nil {
			sid := session(i)
			m.SessionID = &sid
		}
		for try := 1; ; try++ {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := s.SendMessage(ctx, m, nil)
			cancel()
			if err == nil {
				break
			}
			if try >= tries {
				t.Fatalf("send %s: %v", id, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func replyTo(queue string, d writeback.Delivery) *protocol.Message {
	return &protocol.Message{MessageID: "r-" + d.Message.MessageID, CorrelationID: d.Message.MessageID,
		ContentType: protocol.ResultContentType, Subject: protocol.ResultSubject, Body: d.Message.Body}
}

func TestPlainQueueRepliesAndCompletes(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests"}, devbus.QueueConfig{Name: "replies"})
	client := newTestClient(t, srv)
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		time.Sleep(20 * time.Millisecond) // let work overlap
		return writeback.Outcome{Settle: writeback.Complete, Reply: replyTo("replies", d), ReplyTo: "replies", RequestID: d.Message.MessageID}
	}}
	c := startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 3})
	sendN(t, client, "requests", 30, nil)
	testkit.WaitFor(t, 20*time.Second, "30 completions", func() bool {
		st, _ := srv.Stats("requests")
		return h.count() >= 30 && st.Active == 0
	})
	if h.count() != 30 {
		t.Fatalf("handled %d deliveries, want 30 (no redelivery)", h.count())
	}
	if h.maxInFlight > 3 || h.maxInFlight < 2 {
		t.Fatalf("at most %d in flight, want 2 or 3 (maxConcurrent 3)", h.maxInFlight)
	}
	replies, err := srv.Messages("replies")
	if err != nil || len(replies) != 30 {
		t.Fatalf("%d replies (%v), want 30", len(replies), err)
	}
	if replies[0].MessageID != "r-"+replies[0].MessageID[2:] {
		t.Fatalf("reply %+v", replies[0])
	}
	if err := c.Ready(); err != nil {
		t.Fatalf("not ready while working: %v", err)
	}
	for _, d := range h.deliveries() {
		if d.DeliveryCount != 1 || d.EnqueuedAt.IsZero() || d.Session != nil || d.Message.ApplicationProperties["n"] == nil {
			t.Fatalf("delivery %+v", d)
		}
	}
}

func TestSettlements(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", MaxDeliveryCount: 5})
	client := newTestClient(t, srv)
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		switch d.Message.MessageID {
		case "m-000":
			return writeback.Outcome{Settle: writeback.DeadLetter, DeadLetterReason: "unauthenticated", DeadLetterDescription: "sender key \"x\" is not trusted"}
		case "m-001":
			if d.DeliveryCount == 1 {
				return writeback.Outcome{Settle: writeback.Abandon}
			}
		case "m-002":
			// A reply that cannot be sent: the message must not be completed.
			if d.DeliveryCount == 1 {
				return writeback.Outcome{Settle: writeback.Complete, Reply: replyTo("", d), ReplyTo: "no-such-queue"}
			}
		}
		return writeback.Outcome{Settle: writeback.Complete}
	}}
	startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 2})
	sendN(t, client, "requests", 3, nil)
	testkit.WaitFor(t, 20*time.Second, "all settled", func() bool {
		st, _ := srv.Stats("requests")
		return st.Active == 0 && st.DeadLettered == 1
	})
	dl, _ := srv.DeadLetters("requests")
	if dl[0].MessageID != "m-000" || dl[0].DeadLetterReason != "unauthenticated" || dl[0].DeadLetterDescription != "sender key \"x\" is not trusted" {
		t.Fatalf("dead letter %+v", dl[0])
	}
	counts := map[string]int{}
	for _, d := range h.deliveries() {
		counts[d.Message.MessageID] = max(counts[d.Message.MessageID], d.DeliveryCount)
	}
	if counts["m-000"] != 1 || counts["m-001"] != 2 || counts["m-002"] != 2 {
		t.Fatalf("delivery counts %v, want m-000 once, m-001 and m-002 twice", counts)
	}
}

func TestSessionQueueKeepsOrderAndState(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: true})
	client := newTestClient(t, srv)
	var mu sync.Mutex
	last := map[string]int{}
	var disorder []string
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		n, _ := strconv.Atoi(string(d.Message.Body))
		sid := d.Message.SessionID
		st, err := d.Session.Get(ctx)
		if err != nil {
			return writeback.Outcome{Settle: writeback.Abandon, Err: err}
		}
		mu.Lock()
		if prev, ok := last[sid]; ok && n <= prev {
			disorder = append(disorder, fmt.Sprintf("%s: %d after %d", sid, n, prev))
		}
		if ok := last[sid]; len(st) > 0 && string(st) != strconv.Itoa(ok) {
			disorder = append(disorder, fmt.Sprintf("%s: state %q, last %d", sid, st, ok))
		}
		last[sid] = n
		mu.Unlock()
		if err := d.Session.Set(ctx, []byte(strconv.Itoa(n))); err != nil {
			return writeback.Outcome{Settle: writeback.Abandon, Err: err}
		}
		return writeback.Outcome{Settle: writeback.Complete}
	}}
	startConsumer(t, client, h, Options{Queue: "requests", Sessions: true, MaxConcurrent: 3})
	sendN(t, client, "requests", 60, func(i int) string { return fmt.Sprintf("u:%d", i%6) })
	testkit.WaitFor(t, 30*time.Second, "60 completions", func() bool {
		st, _ := srv.Stats("requests")
		return st.Active == 0 && h.count() >= 60
	})
	if len(disorder) > 0 || h.count() != 60 {
		t.Fatalf("%d deliveries; out of order: %v", h.count(), disorder)
	}
	if h.maxInFlight > 3 {
		t.Fatalf("%d sessions at once, want at most 3", h.maxInFlight)
	}
	for s := 0; s < 6; s++ {
		st, err := srv.SessionState("requests", fmt.Sprintf("u:%d", s))
		if want := strconv.Itoa(54 + s); err != nil || string(st) != want {
			t.Fatalf("session u:%d state %q (%v), want %q", s, st, err, want)
		}
	}
}

// Two agents on one session queue: every message handled once, each
// session's messages in order.
func TestTwoConsumersOnOneSessionQueue(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: true})
	var mu sync.Mutex
	last := map[string]int{}
	seen := map[string]int{}
	var problems []string
	fn := func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		n, _ := strconv.Atoi(string(d.Message.Body))
		mu.Lock()
		sid := d.Message.SessionID
		if prev, ok := last[sid]; ok && n <= prev {
			problems = append(problems, fmt.Sprintf("%s: %d after %d", sid, n, prev))
		}
		last[sid] = n
		seen[d.Message.MessageID]++
		mu.Unlock()
		time.Sleep(5 * time.Millisecond)
		return writeback.Outcome{Settle: writeback.Complete}
	}
	a, b := &testHandler{fn: fn}, &testHandler{fn: fn}
	startConsumer(t, newTestClient(t, srv), a, Options{Queue: "requests", Sessions: true, MaxConcurrent: 2})
	startConsumer(t, newTestClient(t, srv), b, Options{Queue: "requests", Sessions: true, MaxConcurrent: 2})
	sendN(t, newTestClient(t, srv), "requests", 100, func(i int) string { return fmt.Sprintf("u:%d", i%10) })
	testkit.WaitFor(t, 60*time.Second, "100 completions", func() bool {
		st, _ := srv.Stats("requests")
		return st.Active == 0 && a.count()+b.count() >= 100
	})
	mu.Lock()
	defer mu.Unlock()
	if len(problems) > 0 || len(seen) != 100 || a.count()+b.count() != 100 {
		t.Fatalf("%d distinct, %d deliveries; order problems: %v", len(seen), a.count()+b.count(), problems)
	}
	if a.count() == 0 || b.count() == 0 {
		t.Logf("one consumer took every session (a %d, b %d)", a.count(), b.count())
	}
}

// An emptied session is released at once, not after SessionIdleTimeout:
// with one slot and an idle timeout of a minute, six one-message sessions
// are only handled in time if each is let go when it has nothing more.
func TestEmptySessionIsReleasedAtOnce(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: true})
	client := newTestClient(t, srv)
	h := &testHandler{}
	c, err := New(client, h, Options{Queue: "requests", Sessions: true, MaxConcurrent: 1, SettleTimeout: 3 * time.Second,
		SessionIdleTimeout: time.Minute, AcceptTimeout: 2 * time.Second, ErrorBackoff: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	sendN(t, client, "requests", 6, func(i int) string { return fmt.Sprintf("u:%d", i) })
	testkit.WaitFor(t, 30*time.Second, "six sessions handled", func() bool { return h.count() == 6 && srv.Depth("requests") == 0 })
}

// A writeback longer than the lock duration keeps its lock: the message
// is delivered once and completed.
func TestLockRenewalPastLockDuration(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: sessions, LockDuration: time.Second})
		client := newTestClient(t, srv)
		h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
			select {
			case <-time.After(3500 * time.Millisecond):
			case <-ctx.Done():
				return writeback.Outcome{Settle: writeback.Abandon, Err: ctx.Err()}
			}
			return writeback.Outcome{Settle: writeback.Complete}
		}}
		startConsumer(t, client, h, Options{Queue: "requests", Sessions: sessions, MaxConcurrent: 1})
		var sess func(int) string
		if sessions {
			sess = func(int) string { return "u:1" }
		}
		sendN(t, client, "requests", 1, sess)
		testkit.WaitFor(t, 20*time.Second, "completion", func() bool {
			st, _ := srv.Stats("requests")
			return st.Active == 0 && h.count() > 0
		})
		if h.count() != 1 {
			t.Fatalf("delivered %d times, want once", h.count())
		}
	})
}

// A lost lock cancels the handler's context, so it stops early.
func TestLostLockCancelsTheHandler(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", LockDuration: 2 * time.Second})
	client := newTestClient(t, srv)
	cancelled := make(chan struct{}, 4)
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		if d.DeliveryCount > 1 {
			return writeback.Outcome{Settle: writeback.Complete}
		}
		<-ctx.Done()
		cancelled <- struct{}{}
		return writeback.Outcome{Settle: writeback.Abandon, Err: ctx.Err()}
	}}
	startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 1})
	sendN(t, client, "requests", 1, nil)
	testkit.WaitFor(t, 10*time.Second, "the message to be locked", func() bool { return h.count() == 1 })
	if n, err := srv.ExpireLocks("requests"); err != nil || n != 1 {
		t.Fatalf("expired %d locks: %v", n, err)
	}
	select {
	case <-cancelled:
	case <-time.After(15 * time.Second):
		t.Fatal("the handler was not told its lock was lost")
	}
	testkit.WaitFor(t, 20*time.Second, "redelivery and completion", func() bool {
		st, _ := srv.Stats("requests")
		return st.Active == 0
	})
}

// A settle whose confirmation never comes is given up on after
// SettleTimeout; the consumer goes on, and the message comes back when its
// lock expires.
func TestHangingSettleIsBounded(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", LockDuration: time.Second})
	client := newTestClient(t, srv)
	h := &testHandler{}
	c := startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 1, SettleTimeout: 500 * time.Millisecond})
	sendN(t, client, "requests", 1, nil)
	testkit.WaitFor(t, 10*time.Second, "first delivery", func() bool { return h.count() == 1 })
	testkit.WaitFor(t, 10*time.Second, "first completion", func() bool { return srv.Depth("requests") == 0 })

	// The next message is delivered, but no confirmation comes back any more.
	if err := srv.PauseDispatch("requests"); err != nil {
		t.Fatal(err)
	}
	sendN(t, client, "requests", 1, nil)
	srv.SetResponseDelay(-1)
	if err := srv.ResumeDispatch("requests"); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "second delivery", func() bool { return h.count() >= 2 })
	// The settle is given up on; the failure shows in readiness.
	testkit.WaitFor(t, 10*time.Second, "the settle to time out", func() bool { return c.Ready() != nil })
	// The consumer is not stuck: once the broker answers again, the next
	// message is handled and completed.
	srv.SetResponseDelay(0)
	sendN(t, client, "requests", 1, nil)
	testkit.WaitFor(t, 20*time.Second, "third completion", func() bool { return h.count() >= 3 && srv.Depth("requests") == 0 })
	testkit.WaitFor(t, 10*time.Second, "ready again", func() bool { return c.Ready() == nil })
}

// Stop lets in-flight work finish within the grace period and abandons
// what is still running after it.
func TestGracefulStop(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests"})
	client := newTestClient(t, srv)
	release := make(chan struct{})
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		if d.Message.MessageID == "m-000" {
			<-release // finishes within the grace period
			return writeback.Outcome{Settle: writeback.Complete}
		}
		<-ctx.Done() // never finishes on its own
		return writeback.Outcome{Settle: writeback.Abandon, Err: ctx.Err()}
	}}
	c := startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 2})
	sendN(t, client, "requests", 2, nil)
	testkit.WaitFor(t, 10*time.Second, "both in flight", func() bool { return h.count() == 2 })
	go func() { time.Sleep(200 * time.Millisecond); close(release) }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := c.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	msgs, _ := srv.Messages("requests")
	if len(msgs) != 1 || msgs[0].MessageID != "m-001" || msgs[0].State != "available" || msgs[0].DeliveryCount != 1 {
		t.Fatalf("after stop: %+v, want only m-001, abandoned", msgs)
	}
	if h.count() != 2 {
		t.Fatalf("a message was taken after stop began: %d deliveries", h.count())
	}
}

func TestReadiness(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: sessions})
		c := startConsumer(t, newTestClient(t, srv), &testHandler{}, Options{Queue: "requests", Sessions: sessions, MaxConcurrent: 1})
		testkit.WaitFor(t, 10*time.Second, "ready", func() bool { return c.Ready() == nil })
		_ = srv.Close()
		testkit.WaitFor(t, 30*time.Second, "not ready once the bus is gone", func() bool { return c.Ready() != nil })
	})
}
