package bus

import (
	"context"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/writeback"
)

// After the broker detaches the receiver's links with server-busy (Service
// Bus's "too busy, come back later"), the SDK keeps the receiver open but
// never delivers on it again. The consumer notices a whole empty poll while
// the queue holds messages and receives on a new link.
func TestPlainQueueRecoversFromServerBusyDetach(t *testing.T) {
	for _, cond := range []string{devbus.CondDetachForced, devbus.CondServerBusy} {
		t.Run(cond, func(t *testing.T) {
			srv := startDevbus(t, devbus.QueueConfig{Name: "requests", LockDuration: 5 * time.Second}, devbus.QueueConfig{Name: "replies"})
			client := newTestClient(t, srv)
			h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
				return writeback.Outcome{Settle: writeback.Complete, Reply: replyTo("replies", d), ReplyTo: "replies", RequestID: d.Message.MessageID}
			}}
			startConsumer(t, client, h, Options{Queue: "requests", MaxConcurrent: 2})
			sendN(t, client, "requests", 3, nil)
			testkit.WaitFor(t, 10*time.Second, "3 completions", func() bool { return h.count() >= 3 })
			if n, err := srv.DetachLinks("requests", cond, true); err != nil || n == 0 {
				t.Fatalf("detached %d links: %v", n, err)
			}
			sendN(t, client, "requests", 3, nil)
			testkit.WaitFor(t, 20*time.Second, "3 more completions after the detach", func() bool {
				st, _ := srv.Stats("requests")
				return h.count() >= 6 && st.Active == 0
			})
		})
	}
}
