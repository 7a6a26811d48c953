package devbus

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"go.uber.org/zap"

	"wbagent/internal/devbus/amqp"
)

const (
	// sessionWindow is the incoming window the broker announces per
	// session; it sends a flow when half is used.
	sessionWindow = 5000
	// linkCreditGrant is the credit given to every link on which a client
	// sends (messages, $cbs and $management requests).
	linkCreditGrant = 1000
	// handshakeTimeout bounds the protocol headers and SASL exchange.
	handshakeTimeout = 30 * time.Second
	// writeTimeout bounds one write to a client that stopped reading.
	writeTimeout = 30 * time.Second
)

// conn is one client connection. Its protocol state is guarded by
// Server.mu; only the outbox has its own lock, so that frames can be
// queued while the broker state is locked and written by the writer
// goroutine without blocking anything.
type conn struct {
	id     uint64
	srv    *Server
	nc     net.Conn
	remote string

	// Guarded by srv.mu.
	sessions     map[uint16]*session
	peerMaxFrame uint32
	peerIdle     time.Duration
	containerID  string
	claims       []claim
	closing      bool // close sent: nothing more is processed
	gone         bool // cleaned up

	// claimTimers revalidate the links when a claim expires; srv.mu.
	claimTimers []Timer
	// stalled silences the connection: see Server.StallConnections.
	stalled atomic.Bool

	outMu      sync.Mutex
	out        []byte
	spare      []byte
	flushClose bool

	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// claim is an audience a CBS token authorized on this connection.
type claim struct {
	path    string // lower-case entity path; "" covers the whole namespace
	expires time.Time
	rights  rights // SAS claims allow everything
}

func newConn(s *Server, id uint64, nc net.Conn) *conn {
	return &conn{
		id: id, srv: s, nc: nc, remote: nc.RemoteAddr().String(),
		sessions:     map[uint16]*session{},
		peerMaxFrame: amqp.MinMaxFrameSize,
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
	}
}

// shutdown closes the socket; the reader then cleans up.
func (c *conn) shutdown() {
	c.closeOnce.Do(func() {
		close(c.done)
		_ = c.nc.Close()
	})
}

// write queues raw bytes for the writer goroutine.
func (c *conn) write(b []byte) {
	c.outMu.Lock()
	c.out = append(c.out, b...)
	c.outMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues one frame; a stalled connection sends nothing.
func (c *conn) send(ch uint16, body amqp.Performative, payload []byte) {
	if c.stalled.Load() {
		return
	}
	b, err := amqp.AppendFrame(nil, amqp.Frame{Type: amqp.FrameAMQP, Channel: ch, Body: body, Payload: payload})
	if err != nil {
		c.srv.log.Error("encode frame", zap.Error(err), zap.Uint64("conn", c.id))
		return
	}
	c.write(b)
}

// fail closes the connection with an error, after flushing what is queued.
func (c *conn) fail(cond amqp.Symbol, desc string) {
	if c.closing {
		return
	}
	c.srv.log.Info("closing connection", zap.Uint64("conn", c.id), zap.String("condition", string(cond)), zap.String("description", desc))
	c.closing = true
	c.send(0, &amqp.Close{Error: &amqp.Error{Condition: cond, Description: desc}}, nil)
	c.closeAfterFlush()
}

func (c *conn) closeAfterFlush() {
	c.outMu.Lock()
	c.flushClose = true
	c.outMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// writer writes queued frames and heartbeats until the connection ends.
func (c *conn) writer(heartbeat time.Duration) {
	var tick <-chan time.Time
	if heartbeat > 0 {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		tick = t.C
	}
	empty := []byte{0, 0, 0, 8, 2, 0, 0, 0}
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-tick:
			c.write(empty)
			continue
		}
		c.outMu.Lock()
		buf := c.out
		c.out = c.spare[:0]
		closeNow := c.flushClose
		c.outMu.Unlock()
		if len(buf) > 0 {
			_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.nc.Write(buf); err != nil {
				c.shutdown()
				return
			}
		}
		if cap(buf) <= 1<<20 {
			c.outMu.Lock()
			c.spare = buf[:0]
			c.outMu.Unlock()
		}
		if closeNow {
			c.shutdown()
			return
		}
	}
}

// serve runs the connection: handshake, then one frame at a time.
func (c *conn) serve() {
	defer c.srv.wg.Done()
	defer func() {
		c.shutdown()
		c.srv.mu.Lock()
		c.cleanup()
		c.srv.mu.Unlock()
		c.srv.log.Debug("connection closed", zap.Uint64("conn", c.id), zap.String("remote", c.remote))
	}()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	if err := c.handshake(br); err != nil {
		c.srv.log.Debug("handshake failed", zap.Uint64("conn", c.id), zap.Error(err))
		return
	}
	maxFrame := c.srv.maxFrameSize
	idle := c.srv.idleTimeout
	for {
		if idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		}
		fr, err := amqp.ReadFrame(br, maxFrame)
		if err != nil {
			c.readFailed(err, br)
			return
		}
		if fr.Body == nil {
			continue // heartbeat
		}
		if fr.Type != amqp.FrameAMQP {
			c.srv.mu.Lock()
			c.fail(amqp.ErrIllegalState, "SASL frame after the SASL exchange")
			c.srv.mu.Unlock()
			return
		}
		c.srv.mu.Lock()
		if !c.closing && !c.stalled.Load() {
			c.handle(fr)
		}
		closing := c.closing
		c.srv.mu.Unlock()
		if closing {
			c.drainUntilDone(br)
			return
		}
	}
}

// readFailed answers a read error: a malformed or oversized frame or an
// idle peer gets a close frame with the matching condition; a closed
// socket needs nothing. It waits (bounded) for the close to be flushed.
func (c *conn) readFailed(err error, br *bufio.Reader) {
	var nerr net.Error
	c.srv.mu.Lock()
	switch {
	case c.closing:
	case errors.Is(err, amqp.ErrDecode):
		c.fail(amqp.ErrDecodeError, err.Error())
	case errors.Is(err, amqp.ErrFrameTooLarge):
		c.fail(amqp.ErrFramingError, err.Error())
	case errors.As(err, &nerr) && nerr.Timeout():
		c.fail(amqp.ErrResourceLimit, fmt.Sprintf("no frame for %s (idle-time-out)", c.srv.idleTimeout))
	default:
		c.srv.mu.Unlock()
		return
	}
	c.srv.mu.Unlock()
	c.drainUntilDone(br)
}

// drainUntilDone discards what the client still sends while the writer
// flushes the close frame, so that a client blocked writing to the broker
// cannot keep it from writing; it returns when the socket is closed.
func (c *conn) drainUntilDone(br *bufio.Reader) {
	go func() { _, _ = io.Copy(io.Discard, br) }()
	select {
	case <-c.done:
	case <-time.After(writeTimeout):
		c.shutdown()
	}
}

// handshake exchanges protocol headers, SASL ANONYMOUS and the open
// frames, then starts the writer.
func (c *conn) handshake(br *bufio.Reader) error {
	_ = c.nc.SetDeadline(time.Now().Add(handshakeTimeout))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	var hdr [8]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fmt.Errorf("read protocol header: %w", err)
	}
	if hdr == amqp.HeaderSASL {
		mech, _ := amqp.AppendFrame(nil, amqp.Frame{Type: amqp.FrameSASL, Body: &amqp.SASLMechanisms{Mechanisms: []amqp.Symbol{"ANONYMOUS"}}})
		if _, err := c.nc.Write(append(amqp.HeaderSASL[:], mech...)); err != nil {
			return fmt.Errorf("write SASL mechanisms: %w", err)
		}
		fr, err := amqp.ReadFrame(br, 64<<10)
		if err != nil {
			return fmt.Errorf("read sasl-init: %w", err)
		}
		init, ok := fr.Body.(*amqp.SASLInit)
		code := amqp.SASLOK
		if !ok || init.Mechanism != "ANONYMOUS" {
			code = amqp.SASLAuth
		}
		out, _ := amqp.AppendFrame(nil, amqp.Frame{Type: amqp.FrameSASL, Body: &amqp.SASLOutcome{Code: code}})
		if _, err := c.nc.Write(out); err != nil {
			return fmt.Errorf("write SASL outcome: %w", err)
		}
		if code != amqp.SASLOK {
			return errors.New("client did not choose SASL ANONYMOUS")
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return fmt.Errorf("read AMQP header: %w", err)
		}
	}
	if hdr != amqp.HeaderAMQP {
		_, _ = c.nc.Write(amqp.HeaderAMQP[:])
		return fmt.Errorf("unsupported protocol header %q", hdr[:])
	}
	if _, err := c.nc.Write(amqp.HeaderAMQP[:]); err != nil {
		return fmt.Errorf("write AMQP header: %w", err)
	}
	fr, err := amqp.ReadFrame(br, c.srv.maxFrameSize)
	if err != nil {
		if errors.Is(err, amqp.ErrDecode) {
			c.writeCloseNow(amqp.ErrDecodeError, err.Error())
		}
		return fmt.Errorf("read open: %w", err)
	}
	open, ok := fr.Body.(*amqp.Open)
	if !ok {
		c.writeCloseNow(amqp.ErrIllegalState, "the first frame must be open")
		return fmt.Errorf("first frame is %T, not open", fr.Body)
	}
	c.srv.mu.Lock()
	c.containerID = open.ContainerID
	c.peerMaxFrame = max(open.MaxFrameSize, amqp.MinMaxFrameSize)
	c.peerIdle = open.IdleTimeout
	c.srv.mu.Unlock()
	reply := &amqp.Open{
		ContainerID:  "devbus",
		MaxFrameSize: c.srv.maxFrameSize,
		ChannelMax:   math.MaxUint16,
		IdleTimeout:  c.srv.idleTimeout,
		Properties:   map[amqp.Symbol]any{"product": "devbus"},
	}
	c.send(0, reply, nil)
	var heartbeat time.Duration
	if open.IdleTimeout > 0 {
		heartbeat = open.IdleTimeout / 2
	}
	go c.writer(heartbeat)
	c.srv.log.Debug("connection open", zap.Uint64("conn", c.id), zap.String("remote", c.remote), zap.String("container", open.ContainerID))
	return nil
}

// writeCloseNow answers a bad open exchange directly (the writer is not
// running yet): an open, then a close with the error.
func (c *conn) writeCloseNow(cond amqp.Symbol, desc string) {
	b, _ := amqp.AppendFrame(nil, amqp.Frame{Body: &amqp.Open{ContainerID: "devbus", MaxFrameSize: c.srv.maxFrameSize, ChannelMax: math.MaxUint16}})
	b, _ = amqp.AppendFrame(b, amqp.Frame{Body: &amqp.Close{Error: &amqp.Error{Condition: cond, Description: desc}}})
	_, _ = c.nc.Write(b)
}

// handle processes one frame; srv.mu is held.
func (c *conn) handle(fr amqp.Frame) {
	switch b := fr.Body.(type) {
	case *amqp.Open:
		c.fail(amqp.ErrIllegalState, "open received twice")
	case *amqp.Close:
		c.closing = true
		c.send(0, &amqp.Close{}, nil)
		c.closeAfterFlush()
	case *amqp.Begin:
		c.onBegin(fr.Channel, b)
	default:
		s := c.sessions[fr.Channel]
		if s == nil {
			c.fail(amqp.ErrIllegalState, fmt.Sprintf("%T on channel %d, which has no session", fr.Body, fr.Channel))
			return
		}
		if end, ok := b.(*amqp.End); ok {
			s.onEnd(end)
			return
		}
		if s.ending {
			return
		}
		switch b := b.(type) {
		case *amqp.Attach:
			s.onAttach(b)
		case *amqp.Flow:
			s.onFlow(b)
		case *amqp.Transfer:
			s.onTransfer(b, fr.Payload)
		case *amqp.Disposition:
			s.onDisposition(b)
		case *amqp.Detach:
			s.onDetach(b)
		default:
			c.fail(amqp.ErrIllegalState, fmt.Sprintf("unexpected %T", fr.Body))
		}
	}
}

func (c *conn) onBegin(ch uint16, b *amqp.Begin) {
	if b.RemoteChannel != nil {
		c.fail(amqp.ErrNotAllowed, "devbus does not begin sessions, so a begin must not name a remote channel")
		return
	}
	if _, busy := c.sessions[ch]; busy {
		c.fail(amqp.ErrNotAllowed, fmt.Sprintf("channel %d already has a session", ch))
		return
	}
	s := &session{
		c: c, ch: ch, links: map[uint32]*link{}, unsettled: map[uint32]*delivery{},
		nextIncomingID: b.NextOutgoingID, inRemaining: sessionWindow,
		remoteIncomingWindow: b.IncomingWindow,
	}
	c.sessions[ch] = s
	rc := ch
	c.send(ch, &amqp.Begin{RemoteChannel: &rc, NextOutgoingID: 0, IncomingWindow: sessionWindow,
		OutgoingWindow: math.MaxUint32, HandleMax: math.MaxUint16}, nil)
}

// cleanup releases everything the connection held; srv.mu is held.
func (c *conn) cleanup() {
	if c.gone {
		return
	}
	c.gone = true
	for _, t := range c.claimTimers {
		t.Stop()
	}
	for _, s := range c.sessions {
		s.cleanup()
	}
	c.sessions = map[uint16]*session{}
	delete(c.srv.conns, c.id)
}

// authorized reports whether a CBS token on this connection covers path.
func (c *conn) authorized(path string, now time.Time) bool { return c.authorizedFor(path, now, 0) }

// authorizedFor reports whether a CBS token on this connection covers
// path with the rights need.
func (c *conn) authorizedFor(path string, now time.Time, need rights) bool {
	for _, cl := range c.claims {
		if !now.Before(cl.expires) || cl.rights&need != need {
			continue
		}
		if cl.path == "" || path == cl.path || (len(path) > len(cl.path) && path[len(cl.path)] == '/' && path[:len(cl.path)] == cl.path) {
			return true
		}
	}
	return false
}

// session is one AMQP session: its flow-control state, its links, and the
// deliveries sent on it that the client has not settled yet.
type session struct {
	c      *conn
	ch     uint16
	links  map[uint32]*link
	ending bool

	nextIncomingID uint32
	inRemaining    uint32

	nextOutgoingID       uint32
	remoteIncomingWindow uint32
	nextDeliveryID       uint32
	pending              []outFrame
	unsettled            map[uint32]*delivery
}

// outFrame is an encoded transfer frame waiting for session window.
type outFrame struct {
	l    *link
	b    []byte
	last *delivery // set on the last frame of an unsettled delivery
}

// delivery is a message sent on a peek-lock link, until the client
// settles it.
type delivery struct {
	l     *link
	q     *queue
	token amqp.UUID
	sent  bool // the last frame went out
}

func (s *session) send(body amqp.Performative) { s.c.send(s.ch, body, nil) }

// flow sends the session's flow state, with l's link state when l is set.
func (s *session) flow(l *link, echo bool) {
	nid := s.nextIncomingID
	f := &amqp.Flow{NextIncomingID: &nid, IncomingWindow: s.inRemaining, NextOutgoingID: s.nextOutgoingID,
		OutgoingWindow: math.MaxUint32, Echo: echo}
	if l != nil {
		h := l.handle
		f.Handle = &h
		if l.role == amqp.RoleSender {
			dc, cr := l.deliveryCount, l.credit
			f.DeliveryCount, f.LinkCredit = &dc, &cr
			f.Drain = l.drain
		} else {
			dc, cr := l.inDeliveryCount, l.creditLeft
			f.DeliveryCount, f.LinkCredit = &dc, &cr
		}
	}
	s.send(f)
}

// end ends the session with an error.
func (s *session) end(cond amqp.Symbol, desc string) {
	if s.ending {
		return
	}
	s.ending = true
	s.cleanupLinks()
	s.send(&amqp.End{Error: &amqp.Error{Condition: cond, Description: desc}})
}

func (s *session) onEnd(*amqp.End) {
	s.cleanup()
	delete(s.c.sessions, s.ch)
	if !s.ending {
		s.send(&amqp.End{})
	}
}

func (s *session) cleanup() {
	s.cleanupLinks()
	s.pending = nil
}

func (s *session) cleanupLinks() {
	for _, l := range s.links {
		l.cleanup()
	}
	s.links = map[uint32]*link{}
}

// pump sends queued transfer frames as far as the client's window allows.
func (s *session) pump() {
	for len(s.pending) > 0 && s.remoteIncomingWindow > 0 && !s.ending {
		f := s.pending[0]
		s.pending[0] = outFrame{}
		s.pending = s.pending[1:]
		s.c.write(f.b)
		if f.last != nil {
			f.last.sent = true
		}
		s.nextOutgoingID++
		s.remoteIncomingWindow--
	}
}

// dropPending forgets l's unsent frames (the link is going away).
func (s *session) dropPending(l *link) {
	kept := s.pending[:0]
	for _, f := range s.pending {
		if f.l != l {
			kept = append(kept, f)
		}
	}
	clear(s.pending[len(kept):])
	s.pending = kept
}

func (s *session) onFlow(f *amqp.Flow) {
	var nid uint32
	if f.NextIncomingID != nil {
		nid = *f.NextIncomingID
	}
	s.remoteIncomingWindow = nid + f.IncomingWindow - s.nextOutgoingID
	if f.Handle == nil {
		s.pump()
		if f.Echo {
			s.flow(nil, false)
		}
		return
	}
	l := s.links[*f.Handle]
	if l == nil {
		s.end(amqp.ErrUnattachedHandle, fmt.Sprintf("flow for handle %d, which is not attached", *f.Handle))
		return
	}
	l.onFlow(f)
	s.pump()
}

func (s *session) onTransfer(t *amqp.Transfer, payload []byte) {
	if s.inRemaining == 0 {
		s.end(amqp.ErrWindowViolation, "transfer beyond the session's incoming window")
		return
	}
	s.nextIncomingID++
	s.inRemaining--
	if s.inRemaining <= sessionWindow/2 {
		s.inRemaining = sessionWindow
		s.flow(nil, false)
	}
	l := s.links[t.Handle]
	if l == nil {
		s.end(amqp.ErrUnattachedHandle, fmt.Sprintf("transfer for handle %d, which is not attached", t.Handle))
		return
	}
	l.onTransfer(t, payload)
}

func (s *session) onDisposition(d *amqp.Disposition) {
	if d.Role != amqp.RoleReceiver {
		// The client settles deliveries it sent; the broker settles those
		// at once (receiver settle mode first), so there is nothing to do.
		return
	}
	last := d.First
	if d.Last != nil {
		last = *d.Last
	}
	if last < d.First {
		return
	}
	var ids []uint32
	if last-d.First < uint32(len(s.unsettled))+16 {
		for id := d.First; ; id++ {
			if _, ok := s.unsettled[id]; ok {
				ids = append(ids, id)
			}
			if id == last {
				break
			}
		}
	} else {
		for id := range s.unsettled {
			if id >= d.First && id <= last {
				ids = append(ids, id)
			}
		}
		sortIDs(ids)
	}
	if isNonTerminal(d.State) && !d.Settled {
		return
	}
	now := s.c.srv.clock.Now()
	for _, id := range ids {
		dl := s.unsettled[id]
		delete(s.unsettled, id)
		outcome := dl.q.applyOutcome(dl.token, d.State, now)
		if !d.Settled {
			s.c.srv.confirm(s, &amqp.Disposition{Role: amqp.RoleSender, First: id, Settled: true, State: outcome})
		}
	}
}

func isNonTerminal(st amqp.DeliveryState) bool {
	_, ok := st.(*amqp.Received)
	return st == nil || ok
}

func sortIDs(ids []uint32) {
	for i := 1; i < len(ids); i++ {
		for j := i; j > 0 && ids[j] < ids[j-1]; j-- {
			ids[j], ids[j-1] = ids[j-1], ids[j]
		}
	}
}

func (s *session) onDetach(d *amqp.Detach) {
	l := s.links[d.Handle]
	if l == nil {
		s.end(amqp.ErrUnattachedHandle, fmt.Sprintf("detach for handle %d, which is not attached", d.Handle))
		return
	}
	delete(s.links, d.Handle)
	if l.detaching {
		return // the answer to a detach the broker sent
	}
	if l.waiting {
		// A next-available receiver gave up before a session came: answer
		// its attach without a terminus, then its detach.
		l.sendNullAttach()
	}
	l.cleanup()
	s.send(&amqp.Detach{Handle: d.Handle, Closed: d.Closed})
}

// applyOutcome settles the message locked by token as the client's
// delivery state asks, and returns the state to confirm with.
func (q *queue) applyOutcome(token amqp.UUID, st amqp.DeliveryState, now time.Time) amqp.DeliveryState {
	var err error
	var confirm amqp.DeliveryState
	switch st := st.(type) {
	case *amqp.Accepted:
		err, confirm = q.settle(token, opComplete, "", "", nil, now), &amqp.Accepted{}
	case *amqp.Rejected:
		reason, desc, props := deadLetterInfo(st.Error)
		// Confirmed without an error: with one the SDK takes the
		// dead-letter as failed and retries it.
		err, confirm = q.settle(token, opDeadLetter, reason, desc, props, now), &amqp.Rejected{}
	case *amqp.Modified:
		op := opAbandon
		if st.UndeliverableHere {
			op = opDefer
		}
		err = q.settle(token, op, "", "", annotationProps(st.MessageAnnotations), now)
		confirm = &amqp.Modified{DeliveryFailed: st.DeliveryFailed, UndeliverableHere: st.UndeliverableHere}
	default: // released, or settled without an outcome
		err, confirm = q.settle(token, opRelease, "", "", nil, now), &amqp.Released{}
	}
	if err != nil {
		return &amqp.Rejected{Error: &amqp.Error{Condition: condLockLost, Description: err.Error()}}
	}
	return confirm
}

// deadLetterInfo reads the reason, description and properties to modify
// from the error of a Rejected outcome.
func deadLetterInfo(e *amqp.Error) (reason, desc string, props map[string]any) {
	if e == nil {
		return "", "", nil
	}
	if e.Condition != condDeadLetter {
		return string(e.Condition), e.Description, nil
	}
	for k, v := range e.Info {
		switch k {
		case "DeadLetterReason":
			reason, _ = v.(string)
		case "DeadLetterErrorDescription":
			desc, _ = v.(string)
		default:
			if props == nil {
				props = map[string]any{}
			}
			props[string(k)] = fromWire(v)
		}
	}
	return reason, desc, props
}

func annotationProps(m map[amqp.Symbol]any) map[string]any {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[string(k)] = fromWire(v)
	}
	return out
}

// fromWire converts a decoded AMQP value into the types go-amqp uses for
// application properties (it has no Symbol or UUID of ours).
func fromWire(v any) any {
	switch t := v.(type) {
	case amqp.Symbol:
		return string(t)
	case amqp.UUID:
		return goamqp.UUID(t)
	}
	return v
}
