package testbed

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"

	"wbagent/internal/devbus"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// The Sender's collector records a result as soon as it receives it,
// whatever becomes of completing it. It used to complete each result
// first, with no deadline: after a dropped connection the SDK settles
// through $management and retries with its own default policy (seconds
// apart, no deadline of its own), and meanwhile the result in hand and
// every later one went unrecorded, which TestBusDropsAllConnections in
// the chaos suite saw as a request that left the queue without a result.
// Here no complete ever returns; every result must still be recorded.
func TestSenderRecordsResultsWhileCompletesHang(t *testing.T) {
	ctx := IntegrationContext(t, "runs devbus on loopback", 3*time.Minute)
	b, err := StartBus(ctx, BusOptions{Queues: []devbus.QueueConfig{{Name: "requests"}, {Name: "replies"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	keys, err := NewKeys(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := protocol.LoadSigningKey(keys.AgentSignKey)
	if err != nil {
		t.Fatal(err)
	}
	// A complete that hangs until its deadline, as the SDK's does while
	// the connection keeps dropping.
	hang := func(ctx context.Context, _ *azservicebus.ReceivedMessage) error { <-ctx.Done(); return ctx.Err() }
	s, err := newSender(b, keys, SenderOptions{Queue: "requests", ReplyQueue: "replies"}, hang)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	agent, err := NewClient(b)
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Close(context.Background())
	out, err := agent.NewSender("replies", nil)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 5 {
		id := uuid.NewString()
		m, err := protocol.SignResult(signer, protocol.NewResult(id, wire.OpReset, wire.CodeOK, "", "agent-1", time.Now()), "")
		if err != nil {
			t.Fatal(err)
		}
		if err := out.SendMessage(ctx, ToSDK(m), nil); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := s.WaitAll(wctx, ids); err != nil {
		t.Fatalf("results received but not recorded while their completes hang: %v", err)
	}
	if bad := s.Bad(); len(bad) > 0 {
		t.Fatalf("collector errors: %v", bad)
	}
}
