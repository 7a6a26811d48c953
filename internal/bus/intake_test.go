package bus

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
)

// While Intake says no, nothing is received (the messages stay available
// on the queue, their delivery counts unchanged, on plain and session
// queues alike); once it says yes, everything is handled.
func TestIntakeClosedReceivesNothing(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: sessions})
		client := newTestClient(t, srv)
		var closed atomic.Bool
		closed.Store(true)
		asked := atomic.Int32{}
		h := &testHandler{}
		startConsumer(t, client, h, Options{Queue: "requests", Sessions: sessions, MaxConcurrent: 2,
			Intake: func(context.Context) error {
				asked.Add(1)
				if closed.Load() {
					return errors.New("audit disk full")
				}
				return nil
			}})
		var session func(int) string
		if sessions {
			session = func(i int) string { return "s" + string(rune('a'+i)) }
		}
		sendN(t, client, "requests", 3, session)
		testkit.WaitFor(t, 30*time.Second, "intake to be asked again while closed", func() bool { return asked.Load() >= 6 })
		if n := h.count(); n != 0 {
			t.Fatalf("sessions=%v: %d messages handled while intake was closed", sessions, n)
		}
		msgs, err := srv.Messages("requests")
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.DeliveryCount != 0 || m.State != "available" {
				t.Fatalf("sessions=%v: message %s %s after %d deliveries while intake was closed", sessions, m.MessageID, m.State, m.DeliveryCount)
			}
		}
		if len(msgs) != 3 {
			t.Fatalf("sessions=%v: %d messages queued, want 3", sessions, len(msgs))
		}
		closed.Store(false)
		testkit.WaitFor(t, 30*time.Second, "every message handled after intake opened", func() bool { return h.count() == 3 })
		testkit.WaitFor(t, 30*time.Second, "the queue to empty", func() bool { return srv.Depth("requests") == 0 })
	}
}
