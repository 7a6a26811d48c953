package devbus

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
)

func TestSendReceiveComplete(t *testing.T) {
	srv, c := oneQueue(t)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("m1"), Body: []byte("hello"),
		ApplicationProperties: map[string]any{"k": "v"}, Subject: ptr("subj")})
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, r, 5*time.Second)
	if m.MessageID != "m1" || !bytes.Equal(m.Body, []byte("hello")) || m.ApplicationProperties["k"] != "v" || *m.Subject != "subj" {
		t.Fatalf("got %+v", m)
	}
	if m.DeliveryCount != 1 || m.SequenceNumber == nil || *m.SequenceNumber != 1 || m.LockedUntil == nil || m.EnqueuedTime == nil {
		t.Fatalf("system properties: count %d seq %v locked %v enq %v", m.DeliveryCount, m.SequenceNumber, m.LockedUntil, m.EnqueuedTime)
	}
	infos, _ := srv.Messages("q")
	if len(infos) != 1 || infos[0].State != "locked" || infos[0].LockToken != m.LockToken {
		t.Fatalf("server view %+v, SDK lock token %x", infos, m.LockToken)
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if d := srv.Depth("q"); d != 0 {
		t.Fatalf("depth after complete = %d", d)
	}
}

func TestAbandonRedeliversWithCount2(t *testing.T) {
	_, c := oneQueue(t)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("m1"), Body: []byte("x")})
	r, _ := c.NewReceiverForQueue("q", nil)
	m := receiveOne(t, r, 5*time.Second)
	if err := r.AbandonMessage(testkit.Context(t, 5*time.Second), m, &azservicebus.AbandonMessageOptions{
		PropertiesToModify: map[string]any{"attempt": int64(1)}}); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	m2 := receiveOne(t, r, 5*time.Second)
	if m2.MessageID != "m1" || m2.DeliveryCount != 2 {
		t.Fatalf("redelivery: id %q count %d", m2.MessageID, m2.DeliveryCount)
	}
	if m2.ApplicationProperties["attempt"] != int64(1) {
		t.Fatalf("properties to modify not applied: %v", m2.ApplicationProperties)
	}
	if m2.LockToken == m.LockToken {
		t.Fatal("redelivery reused the lock token")
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m2, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDeadLetterReadBackFromDLQ(t *testing.T) {
	srv, c := oneQueue(t)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("m1"), Body: []byte("x")})
	r, _ := c.NewReceiverForQueue("q", nil)
	m := receiveOne(t, r, 5*time.Second)
	if err := r.DeadLetterMessage(testkit.Context(t, 5*time.Second), m, &azservicebus.DeadLetterOptions{
		Reason: ptr("BadSignature"), ErrorDescription: ptr("signature did not verify")}); err != nil {
		t.Fatalf("dead-letter: %v", err)
	}
	dls, _ := srv.DeadLetters("q")
	if len(dls) != 1 || dls[0].DeadLetterReason != "BadSignature" || dls[0].DeadLetterDescription != "signature did not verify" {
		t.Fatalf("server dead letters: %+v", dls)
	}
	dr, err := c.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, dr, 5*time.Second)
	if d.MessageID != "m1" || d.DeadLetterReason == nil || *d.DeadLetterReason != "BadSignature" ||
		d.DeadLetterErrorDescription == nil || *d.DeadLetterErrorDescription != "signature did not verify" ||
		d.DeadLetterSource == nil || *d.DeadLetterSource != "q" {
		t.Fatalf("dead-lettered message: %+v", d)
	}
	if err := dr.CompleteMessage(testkit.Context(t, 5*time.Second), d, nil); err != nil {
		t.Fatal(err)
	}
	if st, _ := srv.Stats("q"); st.DeadLettered != 0 || st.Active != 0 {
		t.Fatalf("stats after completing the dead letter: %+v", st)
	}
}

func TestRenewLockKeepsMessageLocked(t *testing.T) {
	clock, srv, r, m := lockedOnFakeClock(t)
	first := *m.LockedUntil
	for range 5 {
		clock.Advance(20 * time.Second)
		if err := r.RenewMessageLock(testkit.Context(t, 5*time.Second), m, nil); err != nil {
			t.Fatalf("renew: %v", err)
		}
	}
	if got := m.LockedUntil.Sub(first); got < 99*time.Second || got > 101*time.Second {
		t.Fatalf("LockedUntil moved by %s over five renewals 20s apart", got)
	}
	// 100 s after receipt, more than three lock durations: still ours.
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("complete after renewals: %v", err)
	}
	wantDepth(t, srv, "q", 0, "message still queued")
}

func TestExpiredLockIsLockLostAndRedelivered(t *testing.T) {
	clock, srv, r, m := lockedOnFakeClock(t)
	clock.Advance(29 * time.Second)
	if st, _ := srv.Stats("q"); st.Locked != 1 {
		t.Fatalf("lock ended early: %+v", st)
	}
	clock.Advance(time.Second)
	if st, _ := srv.Stats("q"); st.Locked != 0 || st.Available != 1 {
		t.Fatalf("the lock timer did not release the message: %+v", st)
	}
	err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("complete on an expired lock: %v, want CodeLockLost", err)
	}
	if err := r.RenewMessageLock(testkit.Context(t, 5*time.Second), m, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeLockLost {
		t.Fatalf("renew on an expired lock: %v, want CodeLockLost", err)
	}
	m2 := receiveOne(t, r, 5*time.Second)
	if m2.MessageID != "m1" || m2.DeliveryCount != 2 {
		t.Fatalf("redelivery: %q count %d", m2.MessageID, m2.DeliveryCount)
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m2, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMaxDeliveryCountDeadLetters(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q", MaxDeliveryCount: 3})
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("poison")})
	r, _ := c.NewReceiverForQueue("q", nil)
	for i := 1; i <= 3; i++ {
		m := receiveOne(t, r, 5*time.Second)
		if m.DeliveryCount != uint32(i) {
			t.Fatalf("delivery %d reports count %d", i, m.DeliveryCount)
		}
		if err := r.AbandonMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
			t.Fatal(err)
		}
	}
	dls, _ := srv.DeadLetters("q")
	if len(dls) != 1 || dls[0].DeadLetterReason != ReasonMaxDeliveryCount || dls[0].MessageID != "poison" {
		t.Fatalf("dead letters: %+v", dls)
	}
	wantDepth(t, srv, "q", 0, "poison message still active")
}

func TestTTLExpiry(t *testing.T) {
	clock := newFakeClock()
	srv := startServerWith(t, Options{Clock: clock, Queues: []QueueConfig{{Name: "drop"}, {Name: "dl", DeadLetterOnExpiration: true},
		{Name: "def", DefaultTTL: time.Minute}}})
	c := newClient(t, srv)
	send(t, c, "drop", &azservicebus.Message{MessageID: ptr("a"), TimeToLive: ptr(10 * time.Second)},
		&azservicebus.Message{MessageID: ptr("keep")})
	send(t, c, "dl", &azservicebus.Message{MessageID: ptr("b"), TimeToLive: ptr(10 * time.Second)})
	send(t, c, "def", &azservicebus.Message{MessageID: ptr("c")}, &azservicebus.Message{MessageID: ptr("short"), TimeToLive: ptr(5 * time.Second)},
		&azservicebus.Message{MessageID: ptr("capped"), TimeToLive: ptr(time.Hour)})
	clock.Advance(9 * time.Second)
	if srv.Depth("drop") != 2 || srv.Depth("dl") != 1 || srv.Depth("def") != 2 {
		t.Fatalf("depths after 9s: %d %d %d", srv.Depth("drop"), srv.Depth("dl"), srv.Depth("def"))
	}
	clock.Advance(time.Second)
	st, _ := srv.Stats("dl")
	if srv.Depth("drop") != 1 || st.Active != 0 || st.DeadLettered != 1 {
		t.Fatalf("after 10s: drop %d, dl %+v", srv.Depth("drop"), st)
	}
	dls, _ := srv.DeadLetters("dl")
	if dls[0].DeadLetterReason != ReasonTTLExpired {
		t.Fatalf("dead letter reason %q", dls[0].DeadLetterReason)
	}
	clock.Advance(50 * time.Second)
	if srv.Depth("def") != 0 {
		t.Fatalf("the queue's default TTL did not apply (or did not cap a longer one): depth %d", srv.Depth("def"))
	}
	for q, want := range map[string]int{"drop": 1, "dl": 1, "def": 3} {
		if st, _ := srv.Stats(q); st.Expired != want {
			t.Errorf("queue %s: Stats counts %d expired messages, want %d", q, st.Expired, want)
		}
	}
	r, _ := c.NewReceiverForQueue("drop", nil)
	m := receiveOne(t, r, 5*time.Second)
	if m.MessageID != "keep" {
		t.Fatalf("got %q, want the message without a TTL", m.MessageID)
	}
}

// TestTTLWhileLocked: a message whose time runs out while locked is not
// taken from its receiver; it expires when the lock ends.
func TestTTLWhileLocked(t *testing.T) {
	clock := newFakeClock()
	srv := startServerWith(t, Options{Clock: clock, Queues: []QueueConfig{{Name: "q", LockDuration: 30 * time.Second}}})
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("a"), TimeToLive: ptr(10 * time.Second)})
	r, _ := c.NewReceiverForQueue("q", nil)
	m := receiveOne(t, r, 5*time.Second)
	if m.ExpiresAt == nil || m.ExpiresAt.Sub(*m.EnqueuedTime) != 10*time.Second {
		t.Fatalf("ExpiresAt %v, enqueued %v", m.ExpiresAt, m.EnqueuedTime)
	}
	clock.Advance(15 * time.Second)
	wantDepth(t, srv, "q", 1, "a locked message expired under its receiver")
	if err := r.AbandonMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	wantDepth(t, srv, "q", 0, "an expired message came back after its lock ended")
	if st, _ := srv.Stats("q"); st.Expired != 1 {
		t.Fatalf("Stats counts %d expired messages, want the one whose lock ended", st.Expired)
	}
}

func TestReceiveAndDelete(t *testing.T) {
	srv, c := oneQueue(t)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("a")}, &azservicebus.Message{MessageID: ptr("b")})
	r, err := c.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 2 {
		msgs, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.MessageID)
		}
	}
	if got[0] != "a" || got[1] != "b" {
		t.Fatalf("got %v", got)
	}
	wantDepth(t, srv, "q", 0, "receive-and-delete left messages")
	if err := r.CompleteMessage(testkit.Context(t, time.Second), &azservicebus.ReceivedMessage{}, nil); err == nil {
		t.Fatal("settling in receive-and-delete mode should fail")
	}
}

func TestBatchOf100(t *testing.T) {
	srv, c := oneQueue(t)
	s, _ := c.NewSender("q", nil)
	defer s.Close(testkit.Context(t, time.Second))
	batch, err := s.NewMessageBatch(testkit.Context(t, 5*time.Second), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if err := batch.AddMessage(&azservicebus.Message{MessageID: ptr(fmt.Sprintf("m%03d", i)), Body: bytes.Repeat([]byte{byte(i)}, 100)}, nil); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	if err := s.SendMessageBatch(testkit.Context(t, 5*time.Second), batch, nil); err != nil {
		t.Fatalf("send batch: %v", err)
	}
	if d := srv.Depth("q"); d != 100 {
		t.Fatalf("depth %d after a batch of 100", d)
	}
	r, _ := c.NewReceiverForQueue("q", nil)
	seen := map[string]bool{}
	for len(seen) < 100 {
		msgs, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 100, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if seen[m.MessageID] {
				t.Fatalf("%s delivered twice", m.MessageID)
			}
			seen[m.MessageID] = true
			if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantDepth(t, srv, "q", 0, "messages left")
}

func TestLargeMessageMultiFrame(t *testing.T) {
	_, c := oneQueue(t)
	body := make([]byte, 200<<10)
	for i := range body {
		body[i] = byte(i * 7)
	}
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("big"), Body: body})
	r, _ := c.NewReceiverForQueue("q", nil)
	m := receiveOne(t, r, 5*time.Second)
	if !bytes.Equal(m.Body, body) {
		t.Fatalf("body of %d bytes came back as %d bytes", len(body), len(m.Body))
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	// Larger than the broker accepts: the SDK refuses it before sending.
	s, _ := c.NewSender("q", nil)
	defer s.Close(testkit.Context(t, time.Second))
	err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{Body: make([]byte, 2<<20)}, nil)
	if !errors.Is(err, azservicebus.ErrMessageTooLarge) {
		t.Fatalf("2 MiB message: %v, want ErrMessageTooLarge", err)
	}
}

func TestDuplicateDetection(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "dedup", DuplicateDetection: time.Minute}, QueueConfig{Name: "plain"})
	c := newClient(t, srv)
	for _, q := range []string{"dedup", "plain"} {
		send(t, c, q, &azservicebus.Message{MessageID: ptr("same"), Body: []byte("1")},
			&azservicebus.Message{MessageID: ptr("same"), Body: []byte("2")},
			&azservicebus.Message{MessageID: ptr("other")})
	}
	if d := srv.Depth("dedup"); d != 2 {
		t.Fatalf("dedup queue depth %d, want 2", d)
	}
	if d := srv.Depth("plain"); d != 3 {
		t.Fatalf("queue without duplicate detection: depth %d, want 3", d)
	}
	msgs, _ := srv.Messages("dedup")
	if string(msgs[0].Body) != "1" {
		t.Fatalf("the first copy should be kept, got %q", msgs[0].Body)
	}
}

func TestWrongKeyIsUnauthorized(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	cs := strings.Replace(srv.ConnectionString().Reveal(), "SharedAccessKey=", "SharedAccessKey=x", 1)
	c, err := azservicebus.NewClientFromConnectionString(cs, &azservicebus.ClientOptions{RetryOptions: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(testkit.Context(t, time.Second))
	s, _ := c.NewSender("q", nil)
	err = s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{Body: []byte("x")}, nil)
	var sbErr *azservicebus.Error
	if !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
		t.Fatalf("send with a wrong key: %v, want CodeUnauthorizedAccess", err)
	}
	wantDepth(t, srv, "q", 0, "an unauthorized send was queued")
	wrongName := strings.Replace(srv.ConnectionString().Reveal(), DefaultKeyName, "Other", 1)
	c2, _ := azservicebus.NewClientFromConnectionString(wrongName, &azservicebus.ClientOptions{RetryOptions: fastRetry})
	defer c2.Close(testkit.Context(t, time.Second))
	r, _ := c2.NewReceiverForQueue("q", nil)
	if _, err := r.ReceiveMessages(testkit.Context(t, 5*time.Second), 1, nil); !errors.As(err, &sbErr) || sbErr.Code != azservicebus.CodeUnauthorizedAccess {
		t.Fatalf("receive with a wrong key name: %v, want CodeUnauthorizedAccess", err)
	}
}

func TestUnknownQueueIsNotFound(t *testing.T) {
	_, c := oneQueue(t)
	s, _ := c.NewSender("nope", nil)
	err := s.SendMessage(testkit.Context(t, 5*time.Second), &azservicebus.Message{Body: []byte("x")}, nil)
	if err == nil || !strings.Contains(err.Error(), "amqp:not-found") {
		t.Fatalf("send to an unknown queue: %v", err)
	}
}

func TestDeferAndReceiveDeferred(t *testing.T) {
	srv, _, r := queueWith(t, "d", "next")
	m := receiveOne(t, r, 5*time.Second)
	if err := r.DeferMessage(testkit.Context(t, 5*time.Second), m, nil); err != nil {
		t.Fatal(err)
	}
	n := receiveOne(t, r, 5*time.Second)
	if n.MessageID != "next" {
		t.Fatalf("a deferred message was delivered again: %q", n.MessageID)
	}
	_ = r.CompleteMessage(testkit.Context(t, 5*time.Second), n, nil)
	if st, _ := srv.Stats("q"); st.Deferred != 1 {
		t.Fatalf("stats %+v", st)
	}
	got, err := r.ReceiveDeferredMessages(testkit.Context(t, 5*time.Second), []int64{*m.SequenceNumber}, nil)
	if err != nil || len(got) != 1 || got[0].MessageID != "d" {
		t.Fatalf("receive deferred: %v %v", got, err)
	}
	if got[0].LockToken == ([16]byte{}) {
		t.Fatal("deferred message has no lock token")
	}
	if err := r.CompleteMessage(testkit.Context(t, 5*time.Second), got[0], nil); err != nil {
		t.Fatalf("complete a deferred message (settles on $management): %v", err)
	}
	wantDepth(t, srv, "q", 0, "deferred message still there")
}

func TestPeek(t *testing.T) {
	srv, _, r := queueWith(t, "a", "b", "c")
	p, err := r.PeekMessages(testkit.Context(t, 5*time.Second), 2, nil)
	if err != nil || len(p) != 2 || p[0].MessageID != "a" || p[1].MessageID != "b" {
		t.Fatalf("peek: %v %v", p, err)
	}
	p, err = r.PeekMessages(testkit.Context(t, 5*time.Second), 5, nil)
	if err != nil || len(p) != 1 || p[0].MessageID != "c" {
		t.Fatalf("second peek continues after b: %v %v", p, err)
	}
	p, err = r.PeekMessages(testkit.Context(t, 5*time.Second), 5, nil)
	if err != nil || len(p) != 0 {
		t.Fatalf("peek past the end: %v %v", p, err)
	}
	if st, _ := srv.Stats("q"); st.Available != 3 {
		t.Fatalf("peek changed the queue: %+v", st)
	}
}

// lockedOnFakeClock starts a server on a fake clock whose queue "q" locks
// messages for 30 s, and receives one message on it: the start of the
// tests of what time does to a lock.
func lockedOnFakeClock(t *testing.T) (*fakeClock, *Server, *azservicebus.Receiver, *azservicebus.ReceivedMessage) {
	t.Helper()
	clock := newFakeClock()
	srv := startServerWith(t, Options{Clock: clock, Queues: []QueueConfig{{Name: "q", LockDuration: 30 * time.Second}}})
	c := newClient(t, srv)
	send(t, c, "q", &azservicebus.Message{MessageID: ptr("m1")})
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	return clock, srv, r, receiveOne(t, r, 5*time.Second)
}
