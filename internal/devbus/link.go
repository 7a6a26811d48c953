package devbus

import (
	"fmt"
	"strings"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"go.uber.org/zap"

	"wbagent/internal/devbus/amqp"
)

// Service Bus conditions and names the SDK looks for.
const (
	condDeadLetter         amqp.Symbol = "com.microsoft:dead-letter"
	condLockLost           amqp.Symbol = "com.microsoft:message-lock-lost"
	condSessionLockLost    amqp.Symbol = "com.microsoft:session-lock-lost"
	condSessionCannotLock  amqp.Symbol = "com.microsoft:session-cannot-be-locked"
	condTimeout            amqp.Symbol = "com.microsoft:timeout"
	sessionFilterName      amqp.Symbol = "com.microsoft:session-filter"
	sessionFilterCode                  = uint64(0x00000137000000C)
	lockedUntilUTCProperty amqp.Symbol = "com.microsoft:locked-until-utc"
	acceptTimeoutProperty  amqp.Symbol = "com.microsoft:timeout"
	batchMessageFormat                 = uint32(0x80013700)
	dotnetEpochTicks                   = int64(621355968000000000)
	managementSuffix                   = "/$management"
	cbsAddress                         = "$cbs"
)

type linkKind int

const (
	kindEntity linkKind = iota // messages to or from a queue
	kindCBS                    // $cbs requests or replies
	kindMgmt                   // <entity>/$management requests or replies
)

// link is one attached link. role is the broker's role: RoleSender when the
// client receives on it, RoleReceiver when the client sends.
type link struct {
	s      *session
	name   string
	handle uint32
	role   amqp.Role
	kind   linkKind
	addr   string // the node address as the client gave it
	q      *queue // the entity (for $management: the entity it manages)
	attach *amqp.Attach

	// Broker sending (client receiving).
	deliveryCount uint32
	credit        uint32
	drain         bool
	settled       bool   // receive-and-delete: deliveries go pre-settled
	replyTo       string // RPC reply links: the client's target address
	backlog       []*goamqp.Message
	group         *group // session receivers: the session held
	waiting       bool   // next-available receiver waiting for a session

	// Broker receiving (client sending).
	creditLeft      uint32
	inDeliveryCount uint32
	partial         *partialDelivery

	detaching bool // the broker sent detach and awaits the answer
	cleaned   bool
}

type partialDelivery struct {
	id      uint32
	settled bool
	format  uint32
	payload []byte
}

func (s *session) onAttach(a *amqp.Attach) {
	if _, busy := s.links[a.Handle]; busy {
		s.end(amqp.ErrHandleInUse, fmt.Sprintf("handle %d is already attached", a.Handle))
		return
	}
	l := &link{s: s, name: a.Name, handle: a.Handle, role: !a.Role, attach: a}
	s.links[a.Handle] = l
	srv := s.c.srv
	if a.Role == amqp.RoleSender {
		if a.Target != nil {
			l.addr = a.Target.Address
		}
	} else if a.Source != nil {
		l.addr = a.Source.Address
		if a.Target != nil {
			l.replyTo = a.Target.Address
		}
	}
	now := srv.clock.Now()
	path := strings.ToLower(strings.Trim(l.addr, "/"))
	switch {
	case l.addr == cbsAddress:
		l.kind = kindCBS
	case strings.HasSuffix(path, strings.ToLower(managementSuffix)):
		l.kind = kindMgmt
		l.q = srv.entity(strings.TrimSuffix(path, strings.ToLower(managementSuffix)))
		if l.q == nil {
			l.reject(amqp.ErrNotFound, fmt.Sprintf("the messaging entity %q could not be found", l.addr))
			return
		}
	default:
		l.q = srv.entity(path)
		if l.q == nil {
			l.reject(amqp.ErrNotFound, fmt.Sprintf("the messaging entity %q could not be found", l.addr))
			return
		}
	}
	if l.kind != kindCBS && !s.c.authorizedFor(path, now, l.needs()) {
		l.reject(amqp.ErrUnauthorizedAccess, s.c.unauthorizedDesc(l, path, now))
		return
	}
	if l.role == amqp.RoleReceiver {
		if l.kind == kindEntity && l.q.isDLQ {
			l.reject(amqp.ErrNotAllowed, "messages cannot be sent to a dead-letter queue")
			return
		}
		l.creditLeft = linkCreditGrant
		if a.InitialDeliveryCount != nil {
			l.inDeliveryCount = *a.InitialDeliveryCount
		}
		l.sendAttach(a.Source, nil)
		s.flow(l, false)
		return
	}
	l.settled = a.SndSettleMode != nil && *a.SndSettleMode == amqp.SenderSettleSettled
	if l.kind != kindEntity {
		l.sendAttach(a.Source, nil)
		return
	}
	filter, hasFilter := sessionFilter(a.Source)
	q := l.q
	if hasFilter != q.sessions() {
		if q.sessions() {
			l.reject(amqp.ErrNotAllowed, fmt.Sprintf("queue %q requires sessions: accept a session to receive from it", q.cfg.Name))
		} else {
			l.reject(amqp.ErrNotAllowed, fmt.Sprintf("queue %q has no sessions: receive without a session filter", q.cfg.Name))
		}
		return
	}
	if !hasFilter {
		q.receivers = append(q.receivers, l)
		l.sendAttach(a.Source, nil)
		return
	}
	if id, ok := filter.(string); ok {
		g := q.group(id)
		if g.holder != nil {
			q.dropGroupIfIdle(g)
			l.reject(condSessionCannotLock, fmt.Sprintf("session %q is locked by another receiver", id))
			return
		}
		l.acceptSession(q, g, now)
		return
	}
	if g := q.availableSession(); g != nil {
		l.acceptSession(q, g, now)
		return
	}
	wait := srv.acceptTimeout
	if ms, ok := a.Properties[acceptTimeoutProperty].(uint32); ok && ms > 0 {
		// The client sends what is left of its own deadline: answer a
		// little before it, so that it sees com.microsoft:timeout and not
		// its context ending first.
		wait = time.Duration(ms) * time.Millisecond
		wait -= min(wait/10, 200*time.Millisecond)
	}
	l.waiting = true
	w := &acceptWaiter{l: l}
	w.timer = srv.clock.AfterFunc(wait, func() {
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if !l.waiting || l.cleaned {
			return
		}
		q.removeWaiter(l)
		l.waiting = false
		l.reject(condTimeout, fmt.Sprintf("no session of queue %q became available within %s", q.cfg.Name, wait))
	})
	q.waiters = append(q.waiters, w)
}

// sessionFilter returns the session filter's value (a session id, or nil
// for "next available") and whether the source has one.
func sessionFilter(src *amqp.Source) (any, bool) {
	if src == nil {
		return nil, false
	}
	v, ok := src.Filter[sessionFilterName]
	if !ok {
		return nil, false
	}
	if d, isDesc := v.(amqp.Described); isDesc {
		v = d.Value
	}
	return v, true
}

// acceptSession gives session g to the waiting or attaching link l and
// answers its attach, echoing the chosen session id in the filter.
func (l *link) acceptSession(q *queue, g *group, now time.Time) {
	l.waiting = false
	q.lockSession(g, l, now)
	l.group = g
	q.receivers = append(q.receivers, l)
	src := *l.attach.Source
	src.Filter = map[amqp.Symbol]any{sessionFilterName: amqp.Described{Descriptor: sessionFilterCode, Value: g.id}}
	ticks := g.lockedUntil.UnixMilli()*10000 + dotnetEpochTicks
	l.sendAttach(&src, map[amqp.Symbol]any{lockedUntilUTCProperty: ticks})
	q.srv.log.Debug("session accepted", zapQueue(q.path), zapSession(g.id), zap.String("link", l.name))
}

// sendAttach answers the client's attach, echoing its settle modes and
// termini.
func (l *link) sendAttach(src *amqp.Source, props map[amqp.Symbol]any) {
	a := l.attach
	resp := &amqp.Attach{
		Name: a.Name, Handle: l.handle, Role: l.role,
		SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode,
		Source: src, Target: a.Target,
		MaxMessageSize: l.s.c.srv.maxMessageSize,
		Properties:     props,
	}
	if l.role == amqp.RoleSender {
		zero := uint32(0)
		resp.InitialDeliveryCount = &zero
	}
	l.s.send(resp)
}

// sendNullAttach answers an attach without the terminus the client asked
// for: the way to refuse a link.
func (l *link) sendNullAttach() {
	a := l.attach
	resp := &amqp.Attach{Name: a.Name, Handle: l.handle, Role: l.role, SndSettleMode: a.SndSettleMode, RcvSettleMode: a.RcvSettleMode}
	if l.role == amqp.RoleSender {
		resp.Target = a.Target
	} else {
		resp.Source = a.Source
	}
	l.s.send(resp)
}

// reject refuses an attach: a null terminus, then a detach with the error.
func (l *link) reject(cond amqp.Symbol, desc string) {
	l.s.c.srv.log.Debug("link refused", zap.String("address", l.addr), zap.String("condition", string(cond)), zap.String("description", desc))
	l.sendNullAttach()
	l.cleanup()
	l.detaching = true
	l.s.send(&amqp.Detach{Handle: l.handle, Closed: true, Error: &amqp.Error{Condition: cond, Description: desc}})
}

// forceDetach detaches an attached link with an error.
func (l *link) forceDetach(e *amqp.Error) {
	if l.detaching || l.cleaned {
		return
	}
	l.cleanup()
	l.detaching = true
	l.s.send(&amqp.Detach{Handle: l.handle, Closed: true, Error: e})
}

// cleanup releases what the link holds; it is called once when the link
// goes away for any reason.
func (l *link) cleanup() {
	if l.cleaned {
		return
	}
	l.cleaned = true
	l.partial = nil
	l.backlog = nil
	q := l.q
	if q == nil || l.kind != kindEntity || l.role != amqp.RoleSender {
		return
	}
	q.removeReceiver(l)
	q.removeWaiter(l)
	l.waiting = false
	l.s.dropPending(l)
	now := l.s.c.srv.clock.Now()
	for id, d := range l.s.unsettled {
		if d.l != l {
			continue
		}
		delete(l.s.unsettled, id)
		if !d.sent {
			// Never reached the client: give it back without counting.
			_ = q.settle(d.token, opRelease, "", "", nil, now)
		}
		// A message the client did receive stays locked until its lock
		// expires or is settled through $management, as on Service Bus.
	}
	if g := l.group; g != nil && g.holder == l {
		q.releaseSession(g, now)
	}
	q.dispatch()
}

// onFlow handles the client's link flow.
func (l *link) onFlow(f *amqp.Flow) {
	if l.detaching {
		return
	}
	if l.role == amqp.RoleReceiver {
		if f.Echo {
			l.s.flow(l, false)
		}
		return
	}
	var dc uint32
	if f.DeliveryCount != nil {
		dc = *f.DeliveryCount
	}
	if f.LinkCredit != nil {
		l.credit = dc + *f.LinkCredit - l.deliveryCount
	}
	l.drain = f.Drain
	switch l.kind {
	case kindEntity:
		if l.q != nil && !l.waiting {
			l.q.dispatch()
		}
	default:
		l.flushBacklog()
	}
	if l.drain && l.credit > 0 {
		// Nothing more to send: use up the credit, as drain asks.
		l.deliveryCount += l.credit
		l.credit = 0
		l.s.flow(l, false)
	} else if f.Echo {
		l.s.flow(l, false)
	}
	l.drain = false
}

// onTransfer collects a (possibly multi-frame) delivery the client sends.
func (l *link) onTransfer(t *amqp.Transfer, payload []byte) {
	if l.detaching {
		return
	}
	if l.role != amqp.RoleReceiver {
		l.forceDetach(&amqp.Error{Condition: amqp.ErrNotAllowed, Description: "transfer on a link the client receives on"})
		return
	}
	if l.partial == nil {
		if t.DeliveryID == nil {
			l.forceDetach(&amqp.Error{Condition: amqp.ErrNotAllowed, Description: "first transfer of a delivery without delivery-id"})
			return
		}
		if l.creditLeft == 0 {
			l.forceDetach(&amqp.Error{Condition: amqp.ErrTransferLimit, Description: "transfer without link credit"})
			return
		}
		l.creditLeft--
		l.inDeliveryCount++
		p := &partialDelivery{id: *t.DeliveryID}
		if t.MessageFormat != nil {
			p.format = *t.MessageFormat
		}
		l.partial = p
	}
	p := l.partial
	p.settled = p.settled || t.Settled
	if t.Aborted {
		l.partial = nil
		return
	}
	max := l.s.c.srv.maxMessageSize
	if l.kind != kindEntity {
		max = 1 << 20
	}
	if uint64(len(p.payload))+uint64(len(payload)) > max {
		l.forceDetach(&amqp.Error{Condition: amqp.ErrMessageSizeExceeded,
			Description: fmt.Sprintf("the message is larger than the %d bytes this link accepts", max)})
		return
	}
	p.payload = append(p.payload, payload...)
	if t.More {
		return
	}
	l.partial = nil
	if l.creditLeft < linkCreditGrant/2 {
		l.creditLeft = linkCreditGrant
		l.s.flow(l, false)
	}
	switch l.kind {
	case kindEntity:
		l.receiveMessages(p)
	default:
		l.s.c.handleRequest(l, p)
	}
}

// parseMessage decodes message sections with go-amqp, turning a panic on
// hostile input into an error.
func parseMessage(b []byte) (m *goamqp.Message, err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("decode message: %v", r)
		}
	}()
	m = &goamqp.Message{}
	if err := m.UnmarshalBinary(b); err != nil {
		return nil, fmt.Errorf("decode message: %w", err)
	}
	return m, nil
}

// receiveMessages enqueues what a sender sent: one message, or a batch
// whose data sections are messages.
func (l *link) receiveMessages(p *partialDelivery) {
	q := l.q
	var outcome amqp.DeliveryState = &amqp.Accepted{}
	msgs, err := splitBatch(p)
	if err == nil && q.sessions() {
		for _, m := range msgs {
			if m.Properties == nil || m.Properties.GroupID == nil || *m.Properties.GroupID == "" {
				err = fmt.Errorf("queue %q requires sessions: set a session id on every message", q.cfg.Name)
				break
			}
		}
	}
	if err != nil {
		outcome = &amqp.Rejected{Error: &amqp.Error{Condition: amqp.ErrNotAllowed, Description: err.Error()}}
	} else {
		now := l.s.c.srv.clock.Now()
		for _, m := range msgs {
			if qm, ok := q.enqueue(m, now); ok {
				l.s.c.srv.log.Debug("message enqueued", logMsg(q, qm)...)
			}
		}
		q.dispatch()
	}
	if !p.settled {
		l.s.c.srv.confirm(l.s, &amqp.Disposition{Role: amqp.RoleReceiver, First: p.id, Settled: true, State: outcome})
	}
}

func splitBatch(p *partialDelivery) ([]*goamqp.Message, error) {
	m, err := parseMessage(p.payload)
	if err != nil {
		return nil, err
	}
	if p.format != batchMessageFormat {
		return []*goamqp.Message{m}, nil
	}
	out := make([]*goamqp.Message, 0, len(m.Data))
	for _, d := range m.Data {
		inner, err := parseMessage(d)
		if err != nil {
			return nil, fmt.Errorf("batch entry: %w", err)
		}
		out = append(out, inner)
	}
	return out, nil
}

// deliver sends message m of q on l: locked for peek-lock links, removed
// for receive-and-delete links.
func (l *link) deliver(q *queue, m *message, now time.Time) {
	s := l.s
	var tag []byte
	var d *delivery
	if l.settled {
		m.deliveries++
		tok := newToken()
		tag = dotnetOrder(tok)
	} else {
		q.lock(m, l, now)
		tag = dotnetOrder(m.lockToken)
		d = &delivery{l: l, q: q, token: m.lockToken}
	}
	msg := q.render(m, false)
	if l.settled {
		q.remove(m)
	}
	payload, err := msg.MarshalBinary()
	if err != nil {
		// Cannot happen for a message that decoded; drop it rather than
		// offer it again forever.
		s.c.srv.log.Error("encode message for delivery; dropping it", zap.Error(err), zapQueue(q.path))
		q.remove(m)
		return
	}
	l.credit--
	l.deliveryCount++
	id := s.nextDeliveryID
	s.nextDeliveryID++
	if d != nil {
		s.unsettled[id] = d
	}
	l.queueTransfer(id, tag, 0, payload, l.settled, d)
}

// queueTransfer splits a delivery into frames that fit the client's
// max-frame-size and queues them on the session.
func (l *link) queueTransfer(id uint32, tag []byte, format uint32, payload []byte, settled bool, d *delivery) {
	s := l.s
	maxFrame := int(min(s.c.peerMaxFrame, s.c.srv.maxFrameSize))
	first := true
	for first || len(payload) > 0 {
		t := &amqp.Transfer{Handle: l.handle, Settled: settled}
		if first {
			t.DeliveryID = &id
			t.DeliveryTag = tag
			t.MessageFormat = &format
		}
		t.More = true
		overhead, _ := amqp.TransferOverhead(t)
		room := max(maxFrame-overhead, 1)
		chunk := payload[:min(room, len(payload))]
		payload = payload[len(chunk):]
		t.More = len(payload) > 0
		b, err := amqp.AppendFrame(nil, amqp.Frame{Channel: s.ch, Body: t, Payload: chunk})
		if err != nil {
			s.c.srv.log.Error("encode transfer", zap.Error(err))
			return
		}
		f := outFrame{l: l, b: b}
		if !t.More {
			f.last = d
		}
		s.pending = append(s.pending, f)
		first = false
	}
	s.pump()
}

// sendRPC sends a $cbs or $management response, pre-settled, when the
// reply link has credit; otherwise it waits for credit.
func (l *link) sendRPC(m *goamqp.Message) {
	if l.credit == 0 {
		l.backlog = append(l.backlog, m)
		return
	}
	payload, err := m.MarshalBinary()
	if err != nil {
		l.s.c.srv.log.Error("encode response", zap.Error(err))
		return
	}
	l.credit--
	l.deliveryCount++
	id := l.s.nextDeliveryID
	l.s.nextDeliveryID++
	tag := []byte{byte(id >> 24), byte(id >> 16), byte(id >> 8), byte(id)}
	l.queueTransfer(id, tag, 0, payload, true, nil)
}

func (l *link) flushBacklog() {
	for len(l.backlog) > 0 && l.credit > 0 {
		m := l.backlog[0]
		l.backlog = l.backlog[1:]
		l.sendRPC(m)
	}
}
