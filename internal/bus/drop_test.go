package bus

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/writeback"
)

// Every request is answered while devbus drops every connection over and
// over: a request is completed only after its result was accepted, so a
// drop can delay a result, never lose one.
func TestEveryResultSurvivesConnectionDrops(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		srv := startDevbus(t, devbus.QueueConfig{Name: "requests", RequiresSession: sessions, LockDuration: 3 * time.Second,
			DuplicateDetection: time.Minute, MaxDeliveryCount: 1000}, devbus.QueueConfig{Name: "replies", LockDuration: 3 * time.Second, MaxDeliveryCount: 1000})
		client := newTestClient(t, srv)
		h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
			time.Sleep(5 * time.Millisecond)
			return writeback.Outcome{Settle: writeback.Complete, Reply: replyTo("replies", d), ReplyTo: "replies", RequestID: d.Message.MessageID}
		}}
		startConsumer(t, client, h, Options{Queue: "requests", Sessions: sessions, MaxConcurrent: 4})
		n := 120
		got := collectReplies(t, newTestClient(t, srv), "replies")
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		drops := 0
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(150 * time.Millisecond):
					srv.DropAllConnections()
					drops++
				}
			}
		}()
		var session func(int) string
		if sessions {
			session = func(i int) string { return fmt.Sprintf("s-%d", i%6) }
		}
		sendNumbered(t, newTestClient(t, srv), "requests", n, session, 100)
		deadline := time.Now().Add(2 * time.Minute)
		var missing []string
		for {
			missing = got.missing(n)
			if len(missing) == 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		close(stop)
		wg.Wait()
		if len(missing) > 0 {
			rq, _ := srv.Stats("requests")
			rp, _ := srv.Stats("replies")
			dl, _ := srv.DeadLetters("replies")
			t.Fatalf("after %d drops, %d requests have no result (%v); requests %+v, replies %+v, reply dead letters %v", drops, len(missing), missing, rq, rp, dl)
		}
		t.Logf("%d results through %d drops", n, drops)
	})
}

type replySet struct {
	mu  sync.Mutex
	ids map[string]int
}

func (r *replySet) missing(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m-%03d", i)
		if r.ids[id] == 0 {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// collectReplies receives results peek-lock, as a sender would. A result
// counts once received; its complete runs apart and bounded, because
// after a drop the SDK's settle can retry for minutes (see
// testbed.Sender), and a receive loop waiting on it would stall.
func collectReplies(t *testing.T, c *azservicebus.Client, queue string) *replySet {
	rs := &replySet{ids: map[string]int{}}
	r, err := c.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			msgs, err := r.ReceiveMessages(ctx, 64, nil)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			for _, m := range msgs {
				rs.mu.Lock()
				if m.CorrelationID != nil {
					rs.ids[*m.CorrelationID]++
				}
				rs.mu.Unlock()
				go func() {
					cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
					_ = r.CompleteMessage(cctx, m, nil)
				}()
			}
		}
	}()
	return rs
}
