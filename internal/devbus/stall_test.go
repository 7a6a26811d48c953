package devbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
)

// TestStallReceivers: a stalled receiver gets nothing and hears nothing:
// no message, no error, no detach, its connection open; the message
// waits in the queue, and a receiver on a new connection gets it.
func TestStallReceivers(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"}, QueueConfig{Name: "other"})
	sc := newClient(t, srv)
	rc := newClient(t, srv)
	r, err := rc.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, sc, "q", &azservicebus.Message{Body: []byte("before")})
	msgs, err := r.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive before the stall: %d, %v", len(msgs), err)
	}
	if err := r.CompleteMessage(testkit.Context(t, 10*time.Second), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.StallReceivers("nope"); !errors.Is(err, ErrUnknownQueue) {
		t.Fatalf("unknown queue: %v", err)
	}
	if n, err := srv.StallReceivers("q"); n != 1 || err != nil {
		t.Fatalf("stalled %d connections (%v), want the receiver's", n, err)
	}
	// The sender's connection was left alone.
	send(t, sc, "q", &azservicebus.Message{Body: []byte("during")})
	msgs, err = r.ReceiveMessages(testkit.Context(t, 3*time.Second), 1, nil)
	if len(msgs) != 0 || (err != nil && !errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("stalled receiver: %d messages, %v; want nothing at all", len(msgs), err)
	}
	st, _ := srv.Stats("q")
	if st.Available != 1 || st.Locked != 0 {
		t.Fatalf("stats %+v: the message must wait, unlocked, for a live receiver", st)
	}
	stalled := 0
	for _, ci := range srv.Connections() {
		if ci.Stalled {
			stalled++
		}
	}
	if stalled != 1 || len(srv.Connections()) != 2 {
		t.Fatalf("connections %+v: want both open, one stalled", srv.Connections())
	}
	// A rebuilt client is served.
	r2, err := newClient(t, srv).NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err = r2.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "during" {
		t.Fatalf("receive on a new connection: %d, %v", len(msgs), err)
	}
	if err := r2.CompleteMessage(testkit.Context(t, 10*time.Second), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
	if n := srv.StallConnections(); n != 2 {
		t.Fatalf("StallConnections stalled %d, want the two not yet stalled", n)
	}
	// Stalled clients would wait for the answer to their close: cut them.
	t.Cleanup(func() { srv.DropAllConnections() })
	if srv.StallConnection(9999) {
		t.Fatal("stalled a connection that does not exist")
	}
}
