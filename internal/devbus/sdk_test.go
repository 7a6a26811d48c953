package devbus

import (
	"bytes"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

func TestSendReceiveComplete(t *testing.T) {
	srv := startServer(t, QueueConfig{Name: "q"})
	c := newClient(t, srv)
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
	if err := r.CompleteMessage(ctxT(t, 5*time.Second), m, nil); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if d := srv.Depth("q"); d != 0 {
		t.Fatalf("depth after complete = %d", d)
	}
}
