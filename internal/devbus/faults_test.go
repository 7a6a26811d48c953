package devbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
)

// TestDropAllConnectionsMidStream cuts every socket three times while a
// sender and a receiver work. The SDK reconnects on its own; at the end
// every message was received and none came back after the receiver
// completed it.
func TestDropAllConnectionsMidStream(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q", LockDuration: time.Second, DuplicateDetection: time.Minute})
	sc := newClient(t, srv)
	rc := newClient(t, srv)
	const n = 150
	sender, _ := sc.NewSender("q", nil)
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for i := range n {
			m := &azservicebus.Message{MessageID: ptr(fmt.Sprintf("m%03d", i)), Body: []byte{byte(i)}}
			// A send whose confirmation was lost is sent again; duplicate
			// detection keeps that idempotent.
			for {
				if err := sender.SendMessage(testkit.Context(t, 3*time.Second), m, nil); err == nil {
					break
				}
			}
			time.Sleep(3 * time.Millisecond)
		}
	}()
	stopFaults := make(chan struct{})
	var faults sync.WaitGroup
	var dropped []int
	faults.Go(func() {
		for range 3 {
			select {
			case <-stopFaults:
				return
			case <-time.After(100 * time.Millisecond):
			}
			dropped = append(dropped, srv.DropAllConnections())
		}
	})

	r, _ := rc.NewReceiverForQueue("q", nil)
	received := map[string]int{}
	completed := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-sendDone:
			if srv.Depth("q") == 0 && len(received) == n {
				goto done
			}
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: received %d of %d, depth %d", len(received), n, srv.Depth("q"))
		}
		msgs, err := r.ReceiveMessages(testkit.Context(t, 500*time.Millisecond), 20, nil)
		if err != nil && !strings.Contains(err.Error(), "context deadline exceeded") {
			t.Logf("receive: %v", err)
		}
		for _, m := range msgs {
			if completed[m.MessageID] {
				t.Fatalf("%s was delivered again after it was completed", m.MessageID)
			}
			received[m.MessageID]++
			if err := r.CompleteMessage(testkit.Context(t, 500*time.Millisecond), m, nil); err == nil {
				completed[m.MessageID] = true
			}
		}
	}
done:
	close(stopFaults)
	faults.Wait()
	if len(dropped) != 3 || dropped[0] == 0 || dropped[1] == 0 || dropped[2] == 0 {
		t.Fatalf("connections dropped per round: %v; the faults did not hit a running stream", dropped)
	}
	if dl, _ := srv.DeadLetters("q"); len(dl) != 0 {
		t.Fatalf("dead letters: %+v", dl)
	}
	t.Logf("%d messages, %d completed with confirmation, connections dropped %v", n, len(completed), dropped)
}

func TestForcedDetachRecovers(t *testing.T) {
	srv, c, r := queueWith(t, "a", "b")
	a := receiveOne(t, r, 5*time.Second)
	n, err := srv.DetachLinks("q", CondDetachForced, false)
	if err != nil || n == 0 {
		t.Fatalf("detach: %d %v", n, err)
	}
	// The message received on the detached link settles through
	// $management, its lock still held.
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), a, nil); err != nil {
		t.Fatalf("complete after a forced detach: %v", err)
	}
	b := receiveWithin(t, r, 5*time.Second, "the receiver to recover")
	if b.MessageID != "b" {
		t.Fatalf("got %s", b.MessageID)
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), b, nil); err != nil {
		t.Fatal(err)
	}
	// A sender detached the same way sends again after recovering.
	s, _ := c.NewSender("q", nil)
	sendOn(t, s, &azservicebus.Message{MessageID: ptr("c")})
	if _, err := srv.DetachLinks("q", CondDetachForced, true); err != nil {
		t.Fatal(err)
	}
	if err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{MessageID: ptr("d")}, nil); err != nil {
		t.Fatalf("send after a forced detach: %v", err)
	}
	wantDepth(t, srv, "q", 2)
}

func TestServerBusyDetachReachesTheSender(t *testing.T) {
	srv, c := oneQueue(t)
	s, _ := c.NewSender("q", nil)
	sendOn(t, s, &azservicebus.Message{})
	if n, _ := srv.DetachLinks("q", CondServerBusy, false); n != 1 {
		t.Fatalf("detached %d links", n)
	}
	err := s.SendMessage(testkit.Context(t, 2*time.Second), &azservicebus.Message{}, nil)
	if err == nil || !strings.Contains(err.Error(), CondServerBusy) {
		t.Fatalf("send on a link detached as server-busy: %v", err)
	}
}

func TestCloseAllConnectionsForcedRecovers(t *testing.T) {
	srv, c := oneQueue(t)
	s, _ := c.NewSender("q", nil)
	sendOn(t, s, &azservicebus.Message{})
	if n := srv.CloseAllConnections(); n != 1 {
		t.Fatalf("closed %d", n)
	}
	testkit.WaitFor(t, 5*time.Second, "the connection to close", func() bool { return len(srv.Connections()) == 0 })
	if err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{}, nil); err != nil {
		t.Fatalf("send after amqp:connection:forced: %v", err)
	}
	wantDepth(t, srv, "q", 2)
}

func TestFailCBS(t *testing.T) {
	srv, c := oneQueue(t)
	srv.FailCBS(1, 0)
	s, _ := c.NewSender("q", nil)
	err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{}, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
		t.Fatalf("send with CBS failing: %v", err)
	}
	s2, _ := c.NewSender("q", nil)
	if err := s2.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{}, nil); err != nil {
		t.Fatalf("send once CBS works again: %v", err)
	}
}

func TestResponseDelayAndWithhold(t *testing.T) {
	srv, _, r := queueWith(t, "a", "b")
	msgs, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 2, nil)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("receive: %v %v", msgs, err)
	}
	srv.SetResponseDelay(300 * time.Millisecond)
	start := time.Now()
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("the confirmation came after %s, not delayed", el)
	}
	srv.SetResponseDelay(-1)
	err = r.CompleteMessage(testkit.Context(t, 300*time.Millisecond), msgs[1], nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("complete with the confirmation withheld: %v", err)
	}
	// The broker did complete it; only the answer was lost.
	wantDepth(t, srv, "q", 0, "withheld completion was not applied")
	srv.SetResponseDelay(0)
}

func TestPauseDispatch(t *testing.T) {
	srv, c := oneQueue(t)
	if err := srv.PauseDispatch("q"); err != nil {
		t.Fatal(err)
	}
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("a")})
	r, _ := c.NewReceiverForQueue("q", nil)
	msgs, _ := r.ReceiveMessages(testkit.Context(t, 300*time.Millisecond), 1, nil)
	if len(msgs) != 0 {
		t.Fatal("a paused queue delivered")
	}
	_ = srv.ResumeDispatch("q")
	m := receiveOne(t, r, 5*time.Second)
	if m.MessageID != "a" {
		t.Fatal(m.MessageID)
	}
	if err := srv.PauseDispatch("nope"); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("pause of an unknown queue: %v", err)
	}
}

func TestExpireLockNow(t *testing.T) {
	srv, _, r := queueWith(t, "a", "b")
	msgs, _ := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 2, nil)
	if len(msgs) != 2 {
		t.Fatalf("got %d", len(msgs))
	}
	if ok, _ := srv.ExpireLock("q", msgs[0].LockToken); !ok {
		t.Fatal("lock not found by the SDK's lock token")
	}
	var sbErr *azservicebus.Error
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), msgs[0], nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("complete after ExpireLock: %v", err)
	}
	if n, _ := srv.ExpireLocks("q"); n != 1 {
		t.Fatalf("ExpireLocks ended %d locks", n)
	}
	if err := r.RenewMessageLock(testkit.Context(t, 5*time.Second), msgs[1], nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("renew after ExpireLocks: %v", err)
	}
	infos, _ := srv.Messages("q")
	if len(infos) != 2 || infos[0].DeliveryCount != 1 {
		t.Fatalf("messages %+v", infos)
	}
}

func TestExpireSessionLockRecovers(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "sq", RequiresSession: true})
	c := newClient(t, srv)
	send(t, c, "sq", sessionMsg("s", 0))
	r, err := c.AcceptSessionForQueue(testkit.Context(t, 5*time.Second), "sq", "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, r, 5*time.Second)
	if ok, _ := srv.ExpireSessionLock("sq", "s"); !ok {
		t.Fatal("session not locked")
	}
	// The SDK re-accepts its session on the next receive; the message
	// comes again.
	again := receiveWithin(t, r, 5*time.Second, "redelivery in the re-accepted session")
	if again.MessageID != m.MessageID || again.DeliveryCount != 2 {
		t.Fatalf("got %s count %d", again.MessageID, again.DeliveryCount)
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), again, nil); err != nil {
		t.Fatal(err)
	}
}

// TestSettleThroughManagementAfterDetach: messages received on a link the
// broker detached are settled by the SDK through $management
// update-disposition, each with its own outcome.
func TestSettleThroughManagementAfterDetach(t *testing.T) {
	srv, c := oneQueue(t)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("done")}, &azservicebus.Message{MessageID: ptr("again")},
		&azservicebus.Message{MessageID: ptr("bad")}, &azservicebus.Message{MessageID: ptr("later")})
	r, _ := c.NewReceiverForQueue("q", nil)
	msgs, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 4, nil)
	if err != nil || len(msgs) != 4 {
		t.Fatalf("receive: %d %v", len(msgs), err)
	}
	if _, err := srv.DetachLinks("q", CondDetachForced, false); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, 10*time.Second)
	if err := r.CompleteMessage(ctx, msgs[0], nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if err := r.AbandonMessage(ctx, msgs[1], &azservicebus.AbandonMessageOptions{PropertiesToModify: map[string]any{"why": "retry"}}); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	if err := r.DeadLetterMessage(ctx, msgs[2], &azservicebus.DeadLetterOptions{Reason: ptr("Malformed"), ErrorDescription: ptr("no body")}); err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	if err := r.DeferMessage(ctx, msgs[3], nil); err != nil {
		t.Fatalf("defer: %v", err)
	}
	infos, _ := srv.Messages("q")
	states := map[string]string{}
	for _, m := range infos {
		states[m.MessageID] = m.State
		if m.MessageID == "again" && m.ApplicationProperties["why"] != "retry" {
			t.Errorf("properties to modify not applied: %v", m.ApplicationProperties)
		}
	}
	if len(states) != 2 || states["again"] != "available" || states["later"] != "deferred" {
		t.Fatalf("active messages %v", states)
	}
	dls, _ := srv.DeadLetters("q")
	if len(dls) != 1 || dls[0].DeadLetterReason != "Malformed" || dls[0].DeadLetterDescription != "no body" {
		t.Fatalf("dead letters %+v", dls)
	}
}

func TestDropOneConnection(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	a, b := newClient(t, srv), newClient(t, srv)
	sa, _ := a.NewSender("q", nil)
	sb, _ := b.NewSender("q", nil)
	sendOn(t, sa, &azservicebus.Message{})
	sendOn(t, sb, &azservicebus.Message{})
	conns := srv.Connections()
	if len(conns) != 2 || len(conns[0].Links) == 0 {
		t.Fatalf("connections %+v", conns)
	}
	if !srv.DropConnection(conns[0].ID) || srv.DropConnection(12345) {
		t.Fatal("DropConnection reported wrongly")
	}
	testkit.WaitFor(t, 5*time.Second, "one connection to go", func() bool { return len(srv.Connections()) == 1 })
	// Both clients still send: the dropped one reconnects.
	sendOn(t, sa, &azservicebus.Message{})
	sendOn(t, sb, &azservicebus.Message{})
	wantDepth(t, srv, "q", 4)
}
