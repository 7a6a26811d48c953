package bus

import (
	"context"
	"fmt"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/protocol"
)

// maxReplySenders caps the cached senders; reply queues are normally one
// or two per sender application.
const maxReplySenders = 64

// replySenders keeps one SDK sender per reply queue: a sender holds an AMQP
// link, and opening one per result would double the cost of every reply.
type replySenders struct {
	client  *azservicebus.Client
	bounded func(context.Context, func(context.Context) error) error
	mu      sync.Mutex
	senders map[string]*azservicebus.Sender
}

func newReplySenders(c *azservicebus.Client, bounded func(context.Context, func(context.Context) error) error) *replySenders {
	return &replySenders{client: c, bounded: bounded, senders: map[string]*azservicebus.Sender{}}
}

func (r *replySenders) get(queue string) (*azservicebus.Sender, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.senders[queue]; ok {
		return s, nil
	}
	if len(r.senders) >= maxReplySenders {
		for q, s := range r.senders { // evict any one; reopening is cheap
			delete(r.senders, q)
			go r.closeSender(s)
			break
		}
	}
	s, err := r.client.NewSender(queue, nil)
	if err != nil {
		return nil, fmt.Errorf("create sender for reply queue %q: %w", queue, err)
	}
	r.senders[queue] = s
	return s, nil
}

// send sends one result. On failure the sender is dropped, so the next
// result to that queue starts on a fresh link.
func (r *replySenders) send(queue string, m *protocol.Message) error {
	s, err := r.get(queue)
	if err != nil {
		return err
	}
	sm := ToServiceBus(m)
	err = r.bounded(context.Background(), func(ctx context.Context) error { return s.SendMessage(ctx, sm, nil) })
	if err != nil {
		r.mu.Lock()
		if r.senders[queue] == s {
			delete(r.senders, queue)
		}
		r.mu.Unlock()
		go r.closeSender(s)
		return fmt.Errorf("send result to queue %q: %w", queue, err)
	}
	return nil
}

func (r *replySenders) closeSender(s *azservicebus.Sender) {
	_ = r.bounded(context.Background(), s.Close)
}

func (r *replySenders) closeAll() {
	r.mu.Lock()
	all := r.senders
	r.senders = map[string]*azservicebus.Sender{}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range all {
		wg.Add(1)
		go func() { defer wg.Done(); r.closeSender(s) }()
	}
	wg.Wait()
}

// ToServiceBus converts a protocol message for the SDK; empty fields stay
// unset. Everything that sends (the agent's replies, `wbagent send`, the
// test harnesses) goes through it, so all agree on the mapping.
func ToServiceBus(m *protocol.Message) *azservicebus.Message {
	out := &azservicebus.Message{
		Body:                  m.Body,
		ApplicationProperties: m.ApplicationProperties,
	}
	str := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	out.MessageID = str(m.MessageID)
	out.ContentType = str(m.ContentType)
	out.Subject = str(m.Subject)
	out.SessionID = str(m.SessionID)
	out.CorrelationID = str(m.CorrelationID)
	out.ReplyTo = str(m.ReplyTo)
	out.ReplyToSessionID = str(m.ReplyToSessionID)
	if m.TimeToLive > 0 {
		ttl := m.TimeToLive
		out.TimeToLive = &ttl
	}
	return out
}

// FromServiceBus converts a received message to the protocol's view. A body of
// more than one AMQP data section is passed on empty: protocol v1 requires
// exactly one, and an empty body is refused as malformed.
func FromServiceBus(m *azservicebus.ReceivedMessage) protocol.Message {
	val := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	out := protocol.Message{
		MessageID:             m.MessageID,
		ContentType:           val(m.ContentType),
		Subject:               val(m.Subject),
		SessionID:             val(m.SessionID),
		ReplyTo:               val(m.ReplyTo),
		ReplyToSessionID:      val(m.ReplyToSessionID),
		CorrelationID:         val(m.CorrelationID),
		ApplicationProperties: m.ApplicationProperties,
		Body:                  m.Body,
	}
	if m.TimeToLive != nil {
		out.TimeToLive = *m.TimeToLive
	}
	return out
}
