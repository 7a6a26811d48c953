package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/agent"
	"wbagent/internal/bus"
	"wbagent/internal/config"
)

// queueChecks connects to Service Bus as the agent would and proves it may
// listen on the request queue: on a plain queue by peeking, on a session
// queue by asking for the next session (a "no session waiting" answer
// proves the same; a session it gets is released at once, unread).
func queueChecks(ctx context.Context, cfg *config.Config, getenv func(string) string) []checkRow {
	name := "service bus queue " + cfg.ServiceBus.Queue
	conn, err := agent.BusConnection(cfg, getenv)
	for _, s := range conn.Secrets() {
		defer s.Destroy()
	}
	if err != nil {
		return []checkRow{{Name: name, Detail: err.Error(), Fix: "make the connection string or credential available to the service"}}
	}
	// One attempt: a check should answer quickly, not ride out outages.
	// (The SDK reads MaxRetries 0 as its default of 3; -1 is none.)
	conn.Retry = azservicebus.RetryOptions{MaxRetries: -1, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second}
	client, err := bus.NewClient(conn)
	if err != nil {
		return []checkRow{{Name: name, Detail: err.Error(), Fix: "check servicebus.connectionString (Endpoint=sb://...;SharedAccessKeyName=...;SharedAccessKey=...)"}}
	}
	defer client.Close(context.Background())
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	mode := "peeked"
	if cfg.ServiceBus.Sessions {
		mode = "session receiver accepted"
		sr, err2 := client.AcceptNextSessionForQueue(ctx, cfg.ServiceBus.Queue, nil)
		var sbErr *azservicebus.Error
		switch {
		case err2 == nil:
			_ = sr.Close(ctx)
		case errors.As(err2, &sbErr) && sbErr.Code == azservicebus.CodeTimeout:
			mode, err2 = "reachable, no session waiting", nil
		}
		err = err2
	} else {
		r, err2 := client.NewReceiverForQueue(cfg.ServiceBus.Queue, nil)
		if err2 == nil {
			_, err2 = r.PeekMessages(ctx, 1, nil)
			_ = r.Close(ctx)
		}
		err = err2
	}
	if err != nil {
		if bus.IsNotFound(err) {
			return []checkRow{{Name: name, Detail: fmt.Sprintf("queue %s does not exist in namespace %s", cfg.ServiceBus.Queue, conn.NamespaceName()),
				Fix: "create it, or correct servicebus.queue"}}
		}
		return []checkRow{{Name: name, Detail: bus.Describe(err), Fix: busFix(err, cfg.ServiceBus.Sessions)}}
	}
	return []checkRow{{Name: name, OK: true, Detail: mode}}
}

// busFix is the fix for a failed bus check, chosen by the broker's
// condition: a session mismatch is only suggested when the broker says the
// operation is not allowed on this queue.
func busFix(err error, sessions bool) string {
	switch {
	case bus.IsUnauthorized(err):
		return "the key or identity lacks Listen rights on the queue: grant Listen (and Send on the reply queues)"
	case bus.IsNotFound(err):
		return "create it, or correct servicebus.queue"
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within 15 s: check the endpoint, DNS and that outbound TCP 5671 (AMQP over TLS) is open"
	case bus.Condition(err) == "amqp:not-allowed" && sessions:
		return "the queue does not require sessions: set servicebus.sessions: false, or use a session queue"
	case bus.Condition(err) == "amqp:not-allowed":
		return "the queue requires sessions: set servicebus.sessions: true"
	case bus.Condition(err) != "":
		return "the broker refused the check: see its answer above"
	}
	return "check servicebus.connectionString's Endpoint (or servicebus.namespace), DNS and that outbound TCP 5671 (AMQP over TLS) is open"
}
