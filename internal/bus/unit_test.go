package bus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/protocol"
)

func TestRenewDelay(t *testing.T) {
	for _, c := range []struct{ remaining, want time.Duration }{
		{30 * time.Second, 15 * time.Second},
		{time.Second, 500 * time.Millisecond},
		{0, minRenewDelay},
		{-time.Second, minRenewDelay},
	} {
		if got := renewDelay(c.remaining); got != c.want {
			t.Errorf("renewDelay(%v) = %v, want %v", c.remaining, got, c.want)
		}
	}
}

func TestHealth(t *testing.T) {
	h := health{staleAfter: time.Minute}
	now := time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)
	if h.ready(now) == nil {
		t.Fatal("ready before any answer")
	}
	h.ok(now)
	if err := h.ready(now.Add(30 * time.Second)); err != nil {
		t.Fatalf("not ready after an answer: %v", err)
	}
	if h.ready(now.Add(2*time.Minute)) == nil {
		t.Fatal("still ready long after the last answer")
	}
	h.fail(context.Canceled, now)
	if err := h.ready(now); err != nil {
		t.Fatalf("our own cancellation made it unready: %v", err)
	}
	h.fail(errors.New("connection refused"), now)
	if h.ready(now) == nil {
		t.Fatal("ready after a failure")
	}
	h.ok(now)
	if h.ready(now) != nil {
		t.Fatal("not ready after recovering")
	}
}

// A call that ignores its context (as a settle after a dropped connection
// can) is given up on after SettleTimeout.
func TestBoundedGivesUpOnAHangingCall(t *testing.T) {
	c := &Consumer{o: Options{SettleTimeout: 50 * time.Millisecond}}
	release := make(chan struct{})
	defer close(release)
	start := time.Now()
	err := c.bounded(context.Background(), func(context.Context) error { <-release; return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("bounded did not return")
	}
	if err := c.bounded(context.Background(), func(context.Context) error { return errors.New("x") }); err == nil || err.Error() != "x" {
		t.Fatalf("the call's own error was not returned: %v", err)
	}
}

func TestMessageConversion(t *testing.T) {
	str := func(s string) *string { return &s }
	ttl := 5 * time.Minute
	rm := &azservicebus.ReceivedMessage{
		MessageID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", ContentType: str(protocol.RequestContentType),
		Subject: str("reset"), SessionID: str("u:abc"), ReplyTo: str("replies"), ReplyToSessionID: str("portal-1"),
		CorrelationID: str("c"), TimeToLive: &ttl, Body: []byte(`{"v":1}`),
		ApplicationProperties: map[string]any{protocol.PropSender: "kid"},
	}
	m := FromServiceBus(rm)
	want := protocol.Message{MessageID: rm.MessageID, ContentType: protocol.RequestContentType, Subject: "reset",
		SessionID: "u:abc", ReplyTo: "replies", ReplyToSessionID: "portal-1", CorrelationID: "c", TimeToLive: ttl,
		Body: rm.Body, ApplicationProperties: rm.ApplicationProperties}
	if m.MessageID != want.MessageID || m.ContentType != want.ContentType || m.Subject != want.Subject ||
		m.SessionID != want.SessionID || m.ReplyTo != want.ReplyTo || m.ReplyToSessionID != want.ReplyToSessionID ||
		m.CorrelationID != want.CorrelationID || m.TimeToLive != want.TimeToLive || string(m.Body) != string(want.Body) ||
		m.ApplicationProperties[protocol.PropSender] != "kid" {
		t.Fatalf("FromServiceBus = %+v", m)
	}
	if m := FromServiceBus(&azservicebus.ReceivedMessage{MessageID: "x"}); m.ContentType != "" || m.Body != nil {
		t.Fatalf("empty message converted to %+v", m)
	}
	out := ToServiceBus(&protocol.Message{MessageID: "r", CorrelationID: "id", SessionID: "portal-1",
		ContentType: protocol.ResultContentType, Subject: protocol.ResultSubject, Body: []byte("{}"),
		ApplicationProperties: map[string]any{protocol.PropSignature: "sig"}})
	if *out.MessageID != "r" || *out.CorrelationID != "id" || *out.SessionID != "portal-1" || *out.ContentType != protocol.ResultContentType ||
		*out.Subject != "result" || string(out.Body) != "{}" || out.ApplicationProperties[protocol.PropSignature] != "sig" ||
		out.ReplyTo != nil || out.TimeToLive != nil {
		t.Fatalf("ToServiceBus = %+v", out)
	}
}

func TestOptionsAreExplicit(t *testing.T) {
	good := Options{Queue: "q", MaxConcurrent: 8, SettleTimeout: time.Second, SessionIdleTimeout: time.Second,
		AcceptTimeout: time.Second, ErrorBackoff: time.Second}
	if err := good.check(); err != nil || good.Logger == nil {
		t.Fatalf("explicit options refused: %v", err)
	}
	for name, edit := range map[string]func(*Options){
		"queue":              func(o *Options) { o.Queue = "" },
		"maxConcurrent":      func(o *Options) { o.MaxConcurrent = 0 },
		"negative":           func(o *Options) { o.MaxConcurrent = -1 },
		"settleTimeout":      func(o *Options) { o.SettleTimeout = 0 },
		"sessionIdleTimeout": func(o *Options) { o.SessionIdleTimeout = 0 },
		"acceptTimeout":      func(o *Options) { o.AcceptTimeout = 0 },
		"errorBackoff":       func(o *Options) { o.ErrorBackoff = 0 },
	} {
		o := good
		edit(&o)
		if err := o.check(); err == nil {
			t.Errorf("%s: zero value accepted instead of refused", name)
		}
	}
}
