package devbus

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap/zaptest"

	"wbagent/internal/lab/testkit"
)

// fastRetry keeps the SDK's retries short: its defaults wait seconds.
var fastRetry = azservicebus.RetryOptions{MaxRetries: 5, RetryDelay: 20 * time.Millisecond, MaxRetryDelay: 200 * time.Millisecond}

func skipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("devbus integration test: runs the real SDK over TCP (skipped with -short)")
	}
}

// startServer starts a devbus with the given queues for the test's
// lifetime.
func startServer(t testing.TB, queues ...QueueConfig) *Server {
	t.Helper()
	return startServerWith(t, Options{Queues: queues})
}

// startServerWith starts a devbus with opts for the test's lifetime.
func startServerWith(t testing.TB, opts Options) *Server {
	t.Helper()
	skipShort(t)
	if opts.AcceptSessionTimeout == 0 {
		opts.AcceptSessionTimeout = 2 * time.Second
	}
	if tt, ok := t.(*testing.T); ok && opts.Logger == nil {
		opts.Logger = zaptest.NewLogger(tt)
	}
	srv, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("start devbus: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

// newClient connects the real SDK to srv.
func newClient(t testing.TB, srv *Server) *azservicebus.Client {
	t.Helper()
	return newClientOpts(t, srv.ConnectionString().Reveal(), &azservicebus.ClientOptions{})
}

func ptr[T any](v T) *T { return &v }

func send(t testing.TB, c *azservicebus.Client, queue string, msgs ...*azservicebus.Message) {
	t.Helper()
	s, err := c.NewSender(queue, nil)
	if err != nil {
		t.Fatalf("new sender: %v", err)
	}
	defer s.Close(context.Background())
	for _, m := range msgs {
		if err := s.SendMessage(testkit.Context(t, 10*time.Second), m, nil); err != nil {
			t.Fatalf("send %v: %v", m.MessageID, err)
		}
	}
}

// receiver is what a queue receiver and a session receiver share.
type receiver interface {
	ReceiveMessages(context.Context, int, *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
}

// receiveOne receives exactly one message within the timeout.
func receiveOne(t testing.TB, r receiver, d time.Duration) *azservicebus.ReceivedMessage {
	t.Helper()
	msgs, err := r.ReceiveMessages(testkit.Context(t, d), 1, nil)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("received %d messages, want 1", len(msgs))
	}
	return msgs[0]
}

// fakeClock drives the broker's lock, session-lock and TTL timers from
// the test: time moves only when Advance says so.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Now()} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// Advance moves time forward and runs, in time order, every timer that
// comes due (including ones those timers arm).
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for {
		c.mu.Lock()
		var next *fakeTimer
		for _, t := range c.timers {
			if !t.done && !t.at.After(end) && (next == nil || t.at.Before(next.at)) {
				next = t
			}
		}
		if next == nil {
			c.now = end
			c.mu.Unlock()
			return
		}
		next.done = true
		if next.at.After(c.now) {
			c.now = next.at
		}
		c.mu.Unlock()
		next.f()
	}
}

// sendOn sends one message on an existing sender.
func sendOn(t testing.TB, s *azservicebus.Sender, m *azservicebus.Message) {
	t.Helper()
	if err := s.SendMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// wantDepth checks a queue's active message count; why, when given, says
// what a wrong count means.
func wantDepth(t testing.TB, srv *Server, queue string, n int, why ...string) {
	t.Helper()
	if d := srv.Depth(queue); d != n {
		reason := ""
		for _, w := range why {
			reason += w + ": "
		}
		t.Fatalf("%squeue %s has %d active messages, want %d", reason, queue, d, n)
	}
}

// queueWith starts a server whose queue "q" holds one message for each id,
// in order, and opens a peek-lock receiver on it: the set-up most tests of
// receiving and settling share.
func queueWith(t testing.TB, ids ...string) (*Server, *azservicebus.Client, *azservicebus.Receiver) {
	t.Helper()
	srv, c := oneQueue(t)
	msgs := make([]*azservicebus.Message, len(ids))
	for i, id := range ids {
		msgs[i] = &azservicebus.Message{MessageID: ptr(id)}
	}
	send(t, c, "q", msgs...)
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, r
}

// oneQueue starts a server with the one queue "q" and a client of it.
func oneQueue(t testing.TB) (*Server, *azservicebus.Client) {
	t.Helper()
	srv := startServer(t, QueueConfig{Name: "q"})
	return srv, newClient(t, srv)
}

// receiveWithin receives on r until one message comes, for a receiver
// that must recover first (a detached link, an expired session lock),
// and fails t, naming what it waited for, after d.
func receiveWithin(t testing.TB, r receiver, d time.Duration, what string) *azservicebus.ReceivedMessage {
	t.Helper()
	var m *azservicebus.ReceivedMessage
	testkit.WaitFor(t, d, what, func() bool {
		msgs, _ := r.ReceiveMessages(testkit.Context(t, 300*time.Millisecond), 1, nil)
		if len(msgs) == 1 {
			m = msgs[0]
		}
		return m != nil
	})
	return m
}
