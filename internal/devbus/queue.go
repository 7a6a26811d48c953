package devbus

import (
	"container/heap"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	goamqp "github.com/Azure/go-amqp"

	"wbagent/internal/devbus/amqp"
)

// Dead-letter reasons the broker itself writes, as Service Bus does.
const (
	ReasonMaxDeliveryCount = "MaxDeliveryCountExceeded"
	ReasonTTLExpired       = "TTLExpiredException"
)

const dlqSuffix = "/$DeadLetterQueue"

type msgState int

const (
	stAvailable msgState = iota
	stLocked
	stDeferred
)

func (s msgState) String() string {
	switch s {
	case stLocked:
		return "locked"
	case stDeferred:
		return "deferred"
	}
	return "available"
}

// message is one message held by a queue. body is the message as the
// sender sent it; the broker's annotations are added when it is rendered
// for a receiver.
type message struct {
	seq       int64
	body      *goamqp.Message
	messageID string
	sessionID string
	enqueued  time.Time
	ttl       time.Duration
	expires   time.Time // zero: never
	expiry    Timer
	expired   bool // the TTL ran out while the message was locked

	deliveries  uint32
	state       msgState
	lockToken   amqp.UUID
	lockedUntil time.Time
	lockTimer   Timer
	lockedBy    *link // the link it was delivered on; nil when locked through $management

	heapIdx int
	gone    bool

	dlReason, dlDesc, dlSource string
}

// group holds the messages of one session (id "" on queues without
// sessions) and the session's lock and state.
type group struct {
	id           string
	ready        msgHeap
	live         int
	holder       *link
	lockedUntil  time.Time
	lockTimer    Timer
	state        []byte
	stateUpdated time.Time
}

// queue is a queue or its dead-letter subqueue.
type queue struct {
	srv     *Server
	cfg     QueueConfig
	path    string
	dlq     *queue // nil on the dead-letter queue itself
	isDLQ   bool
	nextSeq int64

	bySeq     []*message // ascending sequence numbers; gone entries are compacted lazily
	goneCount int
	groups    map[string]*group
	locks     map[amqp.UUID]*message

	receivers []*link // sending links (client receivers) attached to this entity
	waiters   []*acceptWaiter
	rr        int

	dedup      map[string]time.Time
	dedupOrder []dedupEntry
	paused     bool
	// expired counts messages whose time to live ran out, for Stats: a
	// message that expires unread is otherwise gone without a trace.
	expired int
}

type dedupEntry struct {
	id string
	at time.Time
}

func newQueue(s *Server, cfg QueueConfig) *queue {
	q := &queue{srv: s, cfg: cfg, path: cfg.Name, groups: map[string]*group{}, locks: map[amqp.UUID]*message{}, dedup: map[string]time.Time{}}
	dcfg := cfg
	dcfg.RequiresSession = false
	dcfg.DefaultTTL = 0
	dcfg.DuplicateDetection = 0
	q.dlq = &queue{srv: s, cfg: dcfg, path: cfg.Name + dlqSuffix, isDLQ: true, groups: map[string]*group{}, locks: map[amqp.UUID]*message{}}
	return q
}

func (q *queue) sessions() bool { return q.cfg.RequiresSession && !q.isDLQ }

func (q *queue) group(id string) *group {
	g := q.groups[id]
	if g == nil {
		g = &group{id: id}
		q.groups[id] = g
	}
	return g
}

// dropGroupIfIdle forgets a session that has nothing left to remember.
func (q *queue) dropGroupIfIdle(g *group) {
	if g.live == 0 && g.holder == nil && g.state == nil && g.id != "" {
		delete(q.groups, g.id)
	}
}

var errLockLost = errors.New("the lock was lost: it expired or the message was settled")

// newToken returns a random lock token.
func newToken() amqp.UUID {
	var u amqp.UUID
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// messageIDString renders a message id for logs, inspection and duplicate
// detection; the type is part of the key so 1 and "1" differ.
func messageIDString(id any) string {
	switch t := id.(type) {
	case nil:
		return ""
	case string:
		return t
	case goamqp.UUID:
		return amqp.UUID(t).String()
	case []byte:
		return fmt.Sprintf("binary:%x", t)
	default:
		return fmt.Sprintf("%T:%v", t, t)
	}
}

// enqueue adds a message sent by a client (or moved to the dead-letter
// queue). It reports false when duplicate detection dropped it.
func (q *queue) enqueue(body *goamqp.Message, now time.Time) (*message, bool) {
	m := &message{body: body, enqueued: now}
	if body.Properties != nil {
		m.messageID = messageIDString(body.Properties.MessageID)
		if body.Properties.GroupID != nil {
			m.sessionID = *body.Properties.GroupID
		}
	}
	if q.cfg.DuplicateDetection > 0 && m.messageID != "" {
		q.pruneDedup(now)
		if _, seen := q.dedup[m.messageID]; seen {
			return nil, false
		}
		q.dedup[m.messageID] = now
		q.dedupOrder = append(q.dedupOrder, dedupEntry{id: m.messageID, at: now})
	}
	if body.Header != nil && body.Header.TTL > 0 {
		m.ttl = body.Header.TTL
	}
	if q.cfg.DefaultTTL > 0 && (m.ttl == 0 || q.cfg.DefaultTTL < m.ttl) {
		m.ttl = q.cfg.DefaultTTL
	}
	q.insert(m, now)
	return m, true
}

// insert gives m a sequence number, arms its expiry and makes it available.
func (q *queue) insert(m *message, now time.Time) {
	q.nextSeq++
	m.seq = q.nextSeq
	m.state = stAvailable
	m.heapIdx = -1
	q.bySeq = append(q.bySeq, m)
	if m.ttl > 0 {
		m.expires = m.enqueued.Add(m.ttl)
		q.armExpiry(m, now)
	}
	g := q.groupOf(m)
	g.live++
	heap.Push(&g.ready, m)
}

func (q *queue) groupOf(m *message) *group {
	if !q.sessions() {
		return q.group("")
	}
	return q.group(m.sessionID)
}

func (q *queue) armExpiry(m *message, now time.Time) {
	d := m.expires.Sub(now)
	if d < 0 {
		d = 0
	}
	m.expiry = q.srv.clock.AfterFunc(d, func() {
		q.srv.mu.Lock()
		defer q.srv.mu.Unlock()
		if m.gone {
			return
		}
		if m.state == stLocked {
			m.expired = true
			return
		}
		q.expire(m, q.srv.clock.Now())
	})
}

// expire removes a message whose time to live ran out, to the dead-letter
// queue when the queue says so.
func (q *queue) expire(m *message, now time.Time) {
	q.expired++
	if q.cfg.DeadLetterOnExpiration && !q.isDLQ {
		q.deadLetter(m, ReasonTTLExpired, "the message expired before it was completed", now)
		return
	}
	q.remove(m)
	q.srv.log.Debug("message expired", logMsg(q, m)...)
}

func (q *queue) pruneDedup(now time.Time) {
	i := 0
	for ; i < len(q.dedupOrder); i++ {
		e := q.dedupOrder[i]
		if now.Sub(e.at) < q.cfg.DuplicateDetection {
			break
		}
		if q.dedup[e.id] == e.at {
			delete(q.dedup, e.id)
		}
	}
	q.dedupOrder = q.dedupOrder[i:]
}

// remove takes m out of the queue for good.
func (q *queue) remove(m *message) {
	if m.gone {
		return
	}
	g := q.groupOf(m)
	if m.heapIdx >= 0 {
		heap.Remove(&g.ready, m.heapIdx)
	}
	if m.state == stLocked {
		delete(q.locks, m.lockToken)
	}
	stop(m.lockTimer)
	stop(m.expiry)
	m.gone = true
	g.live--
	q.goneCount++
	if q.goneCount > 64 && q.goneCount > len(q.bySeq)/2 {
		kept := q.bySeq[:0]
		for _, x := range q.bySeq {
			if !x.gone {
				kept = append(kept, x)
			}
		}
		clear(q.bySeq[len(kept):])
		q.bySeq = kept
		q.goneCount = 0
	}
	q.dropGroupIfIdle(g)
}

func stop(t Timer) {
	if t != nil {
		t.Stop()
	}
}

// lock locks m for a delivery on l (nil for $management) and counts the
// delivery.
func (q *queue) lock(m *message, l *link, now time.Time) {
	g := q.groupOf(m)
	if m.heapIdx >= 0 {
		heap.Remove(&g.ready, m.heapIdx)
	}
	m.deliveries++
	m.state = stLocked
	m.lockToken = newToken()
	m.lockedBy = l
	q.locks[m.lockToken] = m
	if q.sessions() {
		// Session messages are held by the session lock, not their own.
		m.lockedUntil = g.lockedUntil
		return
	}
	m.lockedUntil = now.Add(q.cfg.LockDuration)
	q.armLock(m, now)
}

func (q *queue) armLock(m *message, now time.Time) {
	stop(m.lockTimer)
	token := m.lockToken
	m.lockTimer = q.srv.clock.AfterFunc(m.lockedUntil.Sub(now), func() {
		q.srv.mu.Lock()
		defer q.srv.mu.Unlock()
		if m.gone || m.state != stLocked || m.lockToken != token {
			return
		}
		q.srv.log.Debug("lock expired", logMsg(q, m)...)
		q.unlock(m, true, q.srv.clock.Now())
		q.dispatch()
	})
}

// lookup finds the message a lock token holds, or errLockLost.
func (q *queue) lookup(token amqp.UUID, now time.Time) (*message, error) {
	m := q.locks[token]
	if m == nil || m.state != stLocked {
		return nil, errLockLost
	}
	if q.sessions() {
		g := q.groupOf(m)
		if g.holder == nil || g.holder != m.lockedBy || !now.Before(g.lockedUntil) {
			return nil, errLockLost
		}
		return m, nil
	}
	if !now.Before(m.lockedUntil) {
		return nil, errLockLost
	}
	return m, nil
}

// unlock ends m's lock without settling it. counted says whether the
// delivery counts against the maximum (abandon, lock expiry) or not
// (release of a message the client never handed to its application).
func (q *queue) unlock(m *message, counted bool, now time.Time) {
	delete(q.locks, m.lockToken)
	stop(m.lockTimer)
	m.lockTimer = nil
	m.lockedBy = nil
	m.lockedUntil = time.Time{}
	if !counted && m.deliveries > 0 {
		m.deliveries--
	}
	if m.expired {
		q.expire(m, now)
		return
	}
	if counted && !q.isDLQ && m.deliveries >= uint32(q.cfg.MaxDeliveryCount) {
		q.deadLetter(m, ReasonMaxDeliveryCount,
			fmt.Sprintf("the message was delivered %d times without being completed", m.deliveries), now)
		return
	}
	m.state = stAvailable
	heap.Push(&q.groupOf(m).ready, m)
}

// settleOp is what a receiver does with a locked message.
type settleOp int

const (
	opComplete settleOp = iota
	opAbandon
	opRelease
	opDefer
	opDeadLetter
)

// settle applies op to the message locked by token.
func (q *queue) settle(token amqp.UUID, op settleOp, reason, desc string, props map[string]any, now time.Time) error {
	m, err := q.lookup(token, now)
	if err != nil {
		return err
	}
	if len(props) > 0 {
		mergeProperties(m, props)
	}
	switch op {
	case opComplete:
		q.remove(m)
	case opAbandon:
		q.unlock(m, true, now)
	case opRelease:
		q.unlock(m, false, now)
	case opDefer:
		delete(q.locks, m.lockToken)
		stop(m.lockTimer)
		m.lockTimer, m.lockedBy, m.lockedUntil = nil, nil, time.Time{}
		m.state = stDeferred
		if m.expired {
			q.expire(m, now)
		}
	case opDeadLetter:
		q.deadLetter(m, reason, desc, now)
	}
	q.dispatch()
	return nil
}

// mergeProperties applies "properties to modify" to a message's
// application properties, as Service Bus does for abandon, defer and
// dead-letter.
func mergeProperties(m *message, props map[string]any) {
	cp := *m.body
	cp.ApplicationProperties = maps.Clone(m.body.ApplicationProperties)
	if cp.ApplicationProperties == nil {
		cp.ApplicationProperties = map[string]any{}
	}
	maps.Copy(cp.ApplicationProperties, props)
	m.body = &cp
}

// deadLetter moves m to the dead-letter queue with a reason and
// description. On the dead-letter queue itself the message only changes
// its reason and becomes available again.
func (q *queue) deadLetter(m *message, reason, desc string, now time.Time) {
	if q.isDLQ {
		if m.state == stLocked {
			q.unlock(m, true, now)
		}
		m.dlReason, m.dlDesc = reason, desc
		return
	}
	q.remove(m)
	dm := &message{
		body:      m.body,
		messageID: m.messageID,
		sessionID: m.sessionID,
		enqueued:  now,
		dlReason:  reason,
		dlDesc:    desc,
		dlSource:  q.cfg.Name,
	}
	q.dlq.insert(dm, now)
	q.srv.log.Info("message dead-lettered", append(logMsg(q, m), zapReason(reason))...)
	q.dlq.dispatch()
}

// dispatch hands available messages to receivers that have credit, and
// sessions to receivers waiting for the next available one.
func (q *queue) dispatch() {
	if q.paused || q.srv.closed {
		return
	}
	now := q.srv.clock.Now()
	if q.sessions() {
		q.serveWaiters(now)
		for _, l := range q.receivers {
			g := l.group
			if g == nil || g.holder != l {
				continue
			}
			for l.credit > 0 && !l.detaching && !l.s.c.stalled.Load() && g.ready.Len() > 0 {
				l.deliver(q, g.ready[0], now)
			}
		}
		return
	}
	g := q.groups[""]
	if g == nil || len(q.receivers) == 0 {
		return
	}
	for g.ready.Len() > 0 {
		l := q.nextReceiver()
		if l == nil {
			return
		}
		l.deliver(q, g.ready[0], now)
	}
}

// nextReceiver picks the next link with credit, round robin.
func (q *queue) nextReceiver() *link {
	n := len(q.receivers)
	for i := range n {
		l := q.receivers[(q.rr+i)%n]
		if l.credit > 0 && !l.detaching && !l.s.c.stalled.Load() {
			q.rr = (q.rr + i + 1) % n
			return l
		}
	}
	return nil
}

func (q *queue) removeReceiver(l *link) {
	for i, x := range q.receivers {
		if x == l {
			q.receivers = append(q.receivers[:i], q.receivers[i+1:]...)
			if q.rr > i {
				q.rr--
			}
			if q.rr >= len(q.receivers) {
				q.rr = 0
			}
			return
		}
	}
}

// acceptWaiter is a session receiver waiting for the next available
// session.
type acceptWaiter struct {
	l     *link
	timer Timer
}

// availableSession returns the unlocked session whose oldest ready message
// is oldest, or nil.
func (q *queue) availableSession() *group {
	var best *group
	for _, g := range q.groups {
		if g.holder != nil || g.ready.Len() == 0 {
			continue
		}
		if best == nil || g.ready[0].seq < best.ready[0].seq {
			best = g
		}
	}
	return best
}

func (q *queue) serveWaiters(now time.Time) {
	for len(q.waiters) > 0 {
		g := q.availableSession()
		if g == nil {
			return
		}
		w := q.waiters[0]
		q.waiters = q.waiters[1:]
		stop(w.timer)
		w.l.acceptSession(q, g, now)
	}
}

func (q *queue) removeWaiter(l *link) {
	for i, w := range q.waiters {
		if w.l == l {
			stop(w.timer)
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			return
		}
	}
}

// lockSession gives session g to link l.
func (q *queue) lockSession(g *group, l *link, now time.Time) {
	g.holder = l
	g.lockedUntil = now.Add(q.cfg.LockDuration)
	q.armSessionLock(g, now)
}

func (q *queue) armSessionLock(g *group, now time.Time) {
	stop(g.lockTimer)
	holder, until := g.holder, g.lockedUntil
	g.lockTimer = q.srv.clock.AfterFunc(until.Sub(now), func() {
		q.srv.mu.Lock()
		defer q.srv.mu.Unlock()
		if g.holder != holder || !g.lockedUntil.Equal(until) {
			return
		}
		q.srv.log.Info("session lock expired", zapQueue(q.path), zapSession(g.id))
		holder.forceDetach(&amqp.Error{Condition: condSessionLockLost,
			Description: fmt.Sprintf("the lock on session %q expired", g.id)})
	})
}

// releaseSession frees the session l holds: its locked messages become
// available again (or dead-lettered past their maximum delivery count).
func (q *queue) releaseSession(g *group, now time.Time) {
	holder := g.holder
	stop(g.lockTimer)
	g.lockTimer = nil
	g.holder = nil
	g.lockedUntil = time.Time{}
	for _, m := range q.bySeq {
		if !m.gone && m.state == stLocked && m.lockedBy == holder && m.sessionID == g.id {
			q.unlock(m, true, now)
		}
	}
	q.dropGroupIfIdle(g)
}

// renewSession extends the lock l holds on session g.
func (q *queue) renewSession(g *group, now time.Time) time.Time {
	g.lockedUntil = now.Add(q.cfg.LockDuration)
	for _, m := range q.bySeq {
		if !m.gone && m.state == stLocked && m.lockedBy == g.holder && m.sessionID == g.id {
			m.lockedUntil = g.lockedUntil
		}
	}
	q.armSessionLock(g, now)
	return g.lockedUntil
}

// renewLock extends a message lock.
func (q *queue) renewLock(token amqp.UUID, now time.Time) (time.Time, error) {
	if q.sessions() {
		return time.Time{}, errors.New("messages of a session queue are locked by their session: renew the session lock")
	}
	m, err := q.lookup(token, now)
	if err != nil {
		return time.Time{}, err
	}
	m.lockedUntil = now.Add(q.cfg.LockDuration)
	q.armLock(m, now)
	return m.lockedUntil, nil
}

// render builds the message a receiver gets: the sender's message plus the
// broker's annotations, with exactly the AMQP types the SDK asserts.
func (q *queue) render(m *message, peek bool) *goamqp.Message {
	out := *m.body
	out.DeliveryAnnotations = nil
	h := goamqp.MessageHeader{}
	if m.body.Header != nil {
		h = *m.body.Header
	}
	if peek {
		h.DeliveryCount = m.deliveries
	} else if m.deliveries > 0 {
		h.DeliveryCount = m.deliveries - 1
	}
	if m.ttl > 0 {
		h.TTL = m.ttl
	}
	out.Header = &h
	if out.Properties == nil {
		// The SDK reads DeliveryCount only when a properties section is there.
		out.Properties = &goamqp.MessageProperties{}
	}
	ann := make(goamqp.Annotations, len(m.body.Annotations)+5)
	maps.Copy(ann, m.body.Annotations)
	ann["x-opt-sequence-number"] = m.seq
	ann["x-opt-enqueued-time"] = m.enqueued.UTC()
	if m.state == stLocked && !m.lockedUntil.IsZero() {
		ann["x-opt-locked-until"] = m.lockedUntil.UTC()
	}
	if m.state == stDeferred {
		ann["x-opt-message-state"] = int32(1)
	}
	if m.dlSource != "" {
		ann["x-opt-deadletter-source"] = m.dlSource
	}
	out.Annotations = ann
	if q.isDLQ {
		props := maps.Clone(m.body.ApplicationProperties)
		if props == nil {
			props = map[string]any{}
		}
		props["DeadLetterReason"] = m.dlReason
		props["DeadLetterErrorDescription"] = m.dlDesc
		out.ApplicationProperties = props
	}
	return &out
}

// dotnetOrder swaps the first three fields of a UUID between RFC 4122 and
// .NET byte order; it is its own inverse. Service Bus sends lock tokens as
// delivery tags in .NET order and the SDK swaps them back.
func dotnetOrder(u amqp.UUID) []byte {
	b := u
	b[0], b[1], b[2], b[3] = u[3], u[2], u[1], u[0]
	b[4], b[5] = u[5], u[4]
	b[6], b[7] = u[7], u[6]
	return b[:]
}

// entityName returns the queue name of an entity path ("q" or
// "q/$DeadLetterQueue") in lower case, and whether it is the dead-letter
// queue.
func entityName(path string) (string, bool) {
	p := strings.ToLower(strings.Trim(path, "/"))
	if base, ok := strings.CutSuffix(p, strings.ToLower(dlqSuffix)); ok {
		return base, true
	}
	return p, false
}

// msgHeap orders available messages by sequence number.
type msgHeap []*message

func (h msgHeap) Len() int           { return len(h) }
func (h msgHeap) Less(i, j int) bool { return h[i].seq < h[j].seq }
func (h msgHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = i
	h[j].heapIdx = j
}
func (h *msgHeap) Push(x any) {
	m := x.(*message)
	m.heapIdx = len(*h)
	*h = append(*h, m)
}
func (h *msgHeap) Pop() any {
	old := *h
	m := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	m.heapIdx = -1
	return m
}
