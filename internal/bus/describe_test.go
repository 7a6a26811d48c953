package bus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/Azure/go-amqp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/secret"
	"wbagent/internal/writeback"
)

// The SDK's *Error does not unwrap to the AMQP error it carries: Describe
// must still find the condition, and never print the Go struct.
func TestDescribeBrokerErrors(t *testing.T) {
	linkErr := &amqp.LinkError{RemoteErr: &amqp.Error{Condition: amqp.ErrCondNotFound,
		Description: "The messaging entity 'sb://ns/requests' could not be found. TrackingId:1f2e, SystemTracker:ns:Queue:requests, Timestamp:2026-12-03T10:00:00"}}
	sdkErr := &azservicebus.Error{Code: azservicebus.CodeUnauthorizedAccess}
	// An *azservicebus.Error made the way the SDK makes it: the fields are
	// unexported, so build its text through fmt as the SDK would print it.
	wrapped := fmt.Errorf("accept session: %w", errors.New("(unauthorized): *Error{Condition: amqp:unauthorized-access, Description: Unauthorized access. 'Listen' claim(s) are required to perform this operation. TrackingId:ab, Info: map[]}"))
	for _, c := range []struct {
		err       error
		want      []string
		cond      string
		notFound  bool
		unauthzed bool
	}{
		{linkErr, []string{"the broker answered amqp:not-found (the entity does not exist): The messaging entity 'sb://ns/requests' could not be found."}, "amqp:not-found", true, false},
		{wrapped, []string{"amqp:unauthorized-access (the key or identity is not allowed to do this)", "'Listen' claim(s) are required"}, "amqp:unauthorized-access", false, true},
		{sdkErr, []string{"(unauthorized)"}, "", false, true},
		{context.DeadlineExceeded, []string{"the broker did not answer in time"}, "", false, false},
	} {
		got := Describe(c.err)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("Describe(%v) = %q, want it to contain %q", c.err, got, w)
			}
		}
		for _, bad := range []string{"*Error{", "Info: map", "TrackingId"} {
			if strings.Contains(got, bad) {
				t.Errorf("Describe(%v) = %q: shows %q", c.err, got, bad)
			}
		}
		if Condition(c.err) != c.cond || IsNotFound(c.err) != c.notFound || IsUnauthorized(c.err) != c.unauthzed {
			t.Errorf("%v: condition %q notFound %v unauthorized %v", c.err, Condition(c.err), IsNotFound(c.err), IsUnauthorized(c.err))
		}
	}
}

func TestNamespaceName(t *testing.T) {
	for _, c := range []struct {
		conn Connection
		want string
	}{
		{Connection{Namespace: "contoso.servicebus.windows.net"}, "contoso.servicebus.windows.net"},
		{Connection{ConnectionString: secret.FromString("Endpoint=sb://contoso.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s")}, "contoso.servicebus.windows.net"},
		{Connection{ConnectionString: secret.FromString("endpoint = sb://127.0.0.1:5672 ;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true")}, "127.0.0.1:5672"},
		{Connection{ConnectionString: secret.FromString("SharedAccessKeyName=k;SharedAccessKey=s")}, ""},
		{Connection{}, ""},
	} {
		if got := c.conn.NamespaceName(); got != c.want {
			t.Errorf("NamespaceName() = %q, want %q", got, c.want)
		}
	}
}

// A request queue that does not exist is not a network problem: /readyz
// (Ready) says which queue is missing in which namespace and what to do,
// on a plain and on a session queue.
func TestMissingRequestQueue(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		srv := startDevbus(t, devbus.QueueConfig{Name: "other"})
		client := newTestClient(t, srv)
		ns := Connection{ConnectionString: srv.ConnectionString()}.NamespaceName()
		c := startConsumer(t, client, &testHandler{}, Options{Queue: "requets", Namespace: ns, Sessions: sessions, MaxConcurrent: 2})
		want := "queue requets does not exist in namespace " + ns + ": create it, or correct servicebus.queue"
		var last error
		testkit.WaitFor(t, 30*time.Second, "the missing queue in Ready", func() bool {
			last = c.Ready()
			return last != nil && last.Error() == want
		})
		if strings.Contains(last.Error(), "unreachable") {
			t.Fatalf("Ready() = %q", last)
		}
	})
}

// `run` logs a missing request queue as an error that says what it is and
// what to do, once, not a warning per retry about receiving.
func TestMissingRequestQueueIsLogged(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "other"})
	client := newTestClient(t, srv)
	core, logs := observer.New(zap.InfoLevel)
	c, err := New(client, &testHandler{}, Options{Queue: "requets", Namespace: "ns.example", MaxConcurrent: 2,
		Sessions: true, AcceptTimeout: 2 * time.Second, ErrorBackoff: 50 * time.Millisecond, SettleTimeout: 3 * time.Second,
		SessionIdleTimeout: 300 * time.Millisecond, Logger: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Stop(context.Background())
	want := "queue requets does not exist in namespace ns.example: create it, or correct servicebus.queue; the agent retries until it exists"
	testkit.WaitFor(t, 30*time.Second, "the missing queue in the log", func() bool { return logs.FilterMessage(want).Len() > 0 })
	time.Sleep(500 * time.Millisecond)
	if n := logs.FilterMessage(want).Len(); n != 1 {
		t.Errorf("logged %d times within a minute, want once", n)
	}
	for _, e := range logs.FilterLevelExact(zap.ErrorLevel).All() {
		for _, f := range e.Context {
			if strings.Contains(f.String, "*Error{") {
				t.Errorf("log field %s is a struct dump: %s", f.Key, f.String)
			}
		}
	}
}

// A reply queue that does not exist leaves the request for redelivery
// (never completed without its result), and readiness names that queue
// and the sender's ReplyTo as the thing to correct.
func TestMissingReplyQueue(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "requests", MaxDeliveryCount: 1 << 20})
	client := newTestClient(t, srv)
	h := &testHandler{fn: func(ctx context.Context, d writeback.Delivery) writeback.Outcome {
		return writeback.Outcome{Settle: writeback.Complete, Reply: replyTo("nosuch", d), ReplyTo: "nosuch", RequestID: d.Message.MessageID}
	}}
	c := startConsumer(t, client, h, Options{Queue: "requests", Namespace: "ns.example", MaxConcurrent: 1})
	sendN(t, client, "requests", 1, nil)
	want := "queue nosuch does not exist in namespace ns.example: create it, or have the sender name an existing queue in ReplyTo"
	testkit.WaitFor(t, 30*time.Second, "the missing reply queue in Ready", func() bool {
		err := c.Ready()
		return err != nil && err.Error() == want
	})
	st, err := srv.Stats("requests")
	if err != nil || st.Active != 1 {
		t.Fatalf("the request is gone without its result: %+v %v", st, err)
	}
}
