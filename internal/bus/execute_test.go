package bus

import (
	"context"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap/zaptest"

	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/writeback"
)

// recordingSettler records which settlement the consumer chose.
type recordingSettler struct{ got []string }

func (r *recordingSettler) CompleteMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.CompleteMessageOptions) error {
	r.got = append(r.got, "complete")
	return nil
}

func (r *recordingSettler) AbandonMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.AbandonMessageOptions) error {
	r.got = append(r.got, "abandon")
	return nil
}

func (r *recordingSettler) DeadLetterMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.DeadLetterOptions) error {
	r.got = append(r.got, "deadletter")
	return nil
}

// A request is completed only after its result has been accepted by the
// broker: when the result cannot be sent (here: nothing listens), or the
// outcome lost its result, the message is abandoned for redelivery.
func TestNoCompletionWithoutAcceptedResult(t *testing.T) {
	client, err := NewClient(Connection{
		ConnectionString: secret.FromString("Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true"),
		Retry:            azservicebus.RetryOptions{MaxRetries: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())
	c, err := New(client, &testHandler{}, Options{Queue: "requests", MaxConcurrent: 1, SettleTimeout: 5 * time.Second,
		SessionIdleTimeout: time.Second, AcceptTimeout: time.Second, ErrorBackoff: 50 * time.Millisecond, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	reply := &protocol.Message{MessageID: "r-1", CorrelationID: "m-1", Body: []byte("{}")}
	for _, tc := range []struct {
		name string
		out  writeback.Outcome
	}{
		{"result not accepted", writeback.Outcome{Settle: writeback.Complete, RequestID: "m-1", Reply: reply, ReplyTo: "replies"}},
		{"invalid request's result not accepted", writeback.Outcome{Settle: writeback.DeadLetter, RequestID: "m-1", Reply: reply, ReplyTo: "replies"}},
		{"reply queue without a result", writeback.Outcome{Settle: writeback.Complete, RequestID: "m-1", ReplyTo: "replies"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &recordingSettler{}
			got := c.execute(s, &azservicebus.ReceivedMessage{MessageID: "m-1"}, time.Now(), tc.out)
			if got.Settle != writeback.Abandon || len(s.got) != 1 || s.got[0] != "abandon" {
				t.Fatalf("settled %v (%v), want one abandon", s.got, got.Settle)
			}
		})
	}
	// Without a reply queue there is nothing to wait for.
	s := &recordingSettler{}
	c.execute(s, &azservicebus.ReceivedMessage{MessageID: "m-2"}, time.Now(), writeback.Outcome{Settle: writeback.Complete, RequestID: "m-2"})
	if len(s.got) != 1 || s.got[0] != "complete" {
		t.Fatalf("settled %v, want complete", s.got)
	}
}
