package testbed

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
)

// `wbagent devbus` as a process: the SDK talks to it, and with State a
// restart keeps the queued messages, the address and the key.
func TestBusProcessRestartKeepsMessages(t *testing.T) {
	ctx, dir, bin := agentBed(t, "builds and runs wbagent", 2*time.Minute)
	b, err := StartBus(ctx, BusOptions{Binary: bin, Dir: dir, State: true,
		Queues: []devbus.QueueConfig{{Name: "q", LockDuration: 5 * time.Second}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	before := b.ConnectionString().Reveal()
	send := func() {
		c, err := NewClient(b)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		s, err := c.NewSender("q", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte("kept")}, nil); err != nil {
			t.Fatal(err)
		}
	}
	send()
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.ConnectionString().Reveal(); got != before {
		t.Fatalf("connection string changed across the restart:\n%s\n%s", before, got)
	}
	c, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	receiveBody(ctx, t, c, "q", "kept", "after the restart")
}

// agentBed starts a process test (skipped under -short, saying what it
// needs): a context that ends with the test or after timeout, a folder
// for the test, and wbagent built into it.
func agentBed(t *testing.T, needs string, timeout time.Duration) (ctx context.Context, dir, bin string) {
	t.Helper()
	ctx = IntegrationContext(t, needs, timeout)
	dir = t.TempDir()
	bin, err := BuildAgent(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	return ctx, dir, bin
}

// receiveBody receives one message on queue through c and fails, naming
// when, unless it comes within 20 seconds with body want.
func receiveBody(ctx context.Context, t *testing.T, c *azservicebus.Client, queue, want, when string) {
	t.Helper()
	r, err := c.NewReceiverForQueue(queue, nil)
	if err != nil {
		t.Fatal(err)
	}
	rctx, rcancel := context.WithTimeout(ctx, 20*time.Second)
	defer rcancel()
	msgs, err := r.ReceiveMessages(rctx, 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != want {
		t.Fatalf("%s: %v %v", when, msgs, err)
	}
}
