package devbus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"wbagent/internal/devbus/amqp"
)

// Conditions for DetachLinks: the two a Service Bus namespace uses to
// push clients off a link. The SDK recovers the link after the first and
// merely retries after the second.
const (
	CondDetachForced = string(amqp.ErrDetachForced)
	CondServerBusy   = "com.microsoft:server-busy"
)

// ErrUnknownQueue is returned (wrapped) by inspection and fault methods
// given a queue name the server does not have.
var ErrUnknownQueue = errors.New("unknown queue")

// QueueStats counts a queue's messages.
type QueueStats struct {
	// Active counts messages that are available, locked or deferred: what
	// Service Bus calls the active message count plus deferred ones.
	Active    int
	Available int
	Locked    int
	Deferred  int
	// DeadLettered counts the dead-letter queue.
	DeadLettered int
	// Sessions counts sessions with messages, a lock or state.
	Sessions int
	// Expired counts the messages whose time to live has run out since
	// this server started, whether dead-lettered or dropped, so that a
	// message missing from a test can be told from one lost.
	Expired int
}

// MessageInfo describes one message for assertions.
type MessageInfo struct {
	SequenceNumber int64
	MessageID      string
	SessionID      string
	// DeliveryCount is how many times the message has been delivered so
	// far (the next receiver sees DeliveryCount+1).
	DeliveryCount uint32
	// State is "available", "locked" or "deferred".
	State       string
	LockToken   [16]byte // when locked, as the SDK reports it
	LockedUntil time.Time
	EnqueuedAt  time.Time
	ExpiresAt   time.Time // zero: never
	// Set on dead-lettered messages.
	DeadLetterReason      string
	DeadLetterDescription string
	DeadLetterSource      string
	// Body is the first data section, as ReceivedMessage.Body.
	Body                  []byte
	ApplicationProperties map[string]any
}

// SessionInfo describes one session of a session queue.
type SessionInfo struct {
	ID          string
	Locked      bool
	LockedUntil time.Time
	State       []byte
	Messages    int
}

// ConnectionInfo describes one client connection.
type ConnectionInfo struct {
	ID          uint64
	Remote      string
	ContainerID string
	// Links lists the attached links' addresses.
	Links []string
	// Stalled is set once StallConnections (or its kin) silenced it.
	Stalled bool
}

// lookupQueue finds a queue or its dead-letter queue by name; s.mu is held.
func (s *Server) lookupQueue(name string) (*queue, error) {
	q := s.entity(strings.ToLower(name))
	if q == nil {
		return nil, fmt.Errorf("%w %q: define it in Options.Queues or with AddQueue", ErrUnknownQueue, name)
	}
	return q, nil
}

// onQueue runs fn on queue name with s.mu held: the way every inspection
// and fault method reaches its queue, and fails for an unknown one.
func onQueue[T any](s *Server, name string, fn func(q *queue) T) (T, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q, err := s.lookupQueue(name)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(q), nil
}

// sortedList turns one of the server's maps into a slice in cmp's order,
// so that inspection answers do not vary with map iteration.
func sortedList[K comparable, V, T any](m map[K]V, item func(K, V) T, cmp func(a, b T) int) []T {
	out := make([]T, 0, len(m))
	for k, v := range m {
		out = append(out, item(k, v))
	}
	slices.SortFunc(out, cmp)
	return out
}

// Queues returns the queue definitions, sorted by name.
func (s *Server) Queues() []QueueConfig {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedList(s.queues, func(_ string, q *queue) QueueConfig { return q.cfg },
		func(a, b QueueConfig) int { return strings.Compare(a.Name, b.Name) })
}

// Stats counts the messages of queue name.
func (s *Server) Stats(name string) (QueueStats, error) {
	return onQueue(s, name, (*queue).stats)
}

func (q *queue) stats() QueueStats {
	var st QueueStats
	for _, m := range q.bySeq {
		if m.gone {
			continue
		}
		st.Active++
		switch m.state {
		case stAvailable:
			st.Available++
		case stLocked:
			st.Locked++
		case stDeferred:
			st.Deferred++
		}
	}
	if q.dlq != nil {
		st.DeadLettered = len(q.dlq.bySeq) - q.dlq.goneCount
	}
	if q.sessions() {
		st.Sessions = len(q.groups)
	}
	st.Expired = q.expired
	return st
}

// Depth returns the number of active (available, locked or deferred)
// messages in queue name, or -1 when there is no such queue.
func (s *Server) Depth(name string) int {
	st, err := s.Stats(name)
	if err != nil {
		return -1
	}
	return st.Active
}

// Messages describes the active messages of queue name (or of
// "name/$DeadLetterQueue"), in sequence order.
func (s *Server) Messages(name string) ([]MessageInfo, error) {
	return onQueue(s, name, (*queue).describe)
}

// DeadLetters describes the dead-lettered messages of queue name, with the
// reason and description each was dead-lettered with.
func (s *Server) DeadLetters(name string) ([]MessageInfo, error) {
	return onQueue(s, name, func(q *queue) []MessageInfo {
		if q.isDLQ {
			return q.describe()
		}
		return q.dlq.describe()
	})
}

func (q *queue) describe() []MessageInfo {
	var out []MessageInfo
	for _, m := range q.bySeq {
		if m.gone {
			continue
		}
		mi := MessageInfo{
			SequenceNumber: m.seq, MessageID: m.messageID, SessionID: m.sessionID,
			DeliveryCount: m.deliveries, State: m.state.String(), EnqueuedAt: m.enqueued, ExpiresAt: m.expires,
			DeadLetterReason: m.dlReason, DeadLetterDescription: m.dlDesc, DeadLetterSource: m.dlSource,
			ApplicationProperties: maps.Clone(m.body.ApplicationProperties),
		}
		if m.state == stLocked {
			mi.LockToken, mi.LockedUntil = m.lockToken, m.lockedUntil
		}
		if len(m.body.Data) > 0 {
			mi.Body = append([]byte(nil), m.body.Data[0]...)
		}
		out = append(out, mi)
	}
	return out
}

// Sessions describes the sessions of session queue name, sorted by id.
func (s *Server) Sessions(name string) ([]SessionInfo, error) {
	return onQueue(s, name, func(q *queue) []SessionInfo {
		if !q.sessions() {
			return nil
		}
		return sortedList(q.groups, func(id string, g *group) SessionInfo {
			return SessionInfo{ID: id, Locked: g.holder != nil, LockedUntil: g.lockedUntil,
				State: append([]byte(nil), g.state...), Messages: g.live}
		}, func(a, b SessionInfo) int { return strings.Compare(a.ID, b.ID) })
	})
}

// SessionState returns the state stored for a session (nil when none).
func (s *Server) SessionState(name, sessionID string) ([]byte, error) {
	return onQueue(s, name, func(q *queue) []byte {
		if g := q.groups[sessionID]; g != nil && g.state != nil {
			return append([]byte(nil), g.state...)
		}
		return nil
	})
}

// Connections describes the open client connections, by id.
func (s *Server) Connections() []ConnectionInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedList(s.conns, func(_ uint64, c *conn) ConnectionInfo {
		ci := ConnectionInfo{ID: c.id, Remote: c.remote, ContainerID: c.containerID, Stalled: c.stalled.Load()}
		for _, sess := range c.sessions {
			for _, l := range sess.links {
				ci.Links = append(ci.Links, l.addr)
			}
		}
		slices.Sort(ci.Links)
		return ci
	}, func(a, b ConnectionInfo) int { return int(a.ID) - int(b.ID) })
}

// DropConnection cuts one connection's socket without a close frame, as a
// network failure would. It reports whether the connection existed.
func (s *Server) DropConnection(id uint64) bool {
	s.mu.Lock()
	c := s.conns[id]
	s.mu.Unlock()
	if c == nil {
		return false
	}
	c.shutdown()
	return true
}

// DropAllConnections cuts every connection's socket without a close
// frame and returns how many there were. Clients reconnect on their own.
func (s *Server) DropAllConnections() int {
	s.mu.Lock()
	conns := slices.Collect(maps.Values(s.conns))
	s.mu.Unlock()
	for _, c := range conns {
		c.shutdown()
	}
	return len(conns)
}

// CloseAllConnections closes every connection with a close frame carrying
// amqp:connection:forced, as a namespace does when it moves clients, and
// returns how many there were.
func (s *Server) CloseAllConnections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.conns {
		if !c.closing {
			c.fail(amqp.ErrConnectionForced, "the connection was closed by devbus (fault injected)")
			n++
		}
	}
	return n
}

// DetachLinks detaches every link attached to entity (a queue name or
// "name/$DeadLetterQueue"; its $management links too when withManagement
// is set) with the given condition, CondDetachForced or CondServerBusy,
// and returns how many links it detached. A session receiver loses its
// session lock with its link.
func (s *Server) DetachLinks(entity, condition string, withManagement bool) (int, error) {
	return onQueue(s, entity, func(q *queue) int {
		n := 0
		for _, c := range s.conns {
			for _, sess := range c.sessions {
				for _, l := range sess.links {
					if l.q != q || l.detaching || (l.kind == kindMgmt && !withManagement) {
						continue
					}
					l.forceDetach(&amqp.Error{Condition: amqp.Symbol(condition), Description: "the link was detached by devbus (fault injected)"})
					n++
				}
			}
		}
		return n
	})
}

// SetResponseDelay delays every $cbs and $management response and every
// settlement confirmation (of sends and of complete/abandon/defer/
// dead-letter) by d. A negative d withholds them: they are never sent.
// Zero restores normal service.
func (s *Server) SetResponseDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.responseDelay = d
}

// FailCBS answers the next n put-token requests with status (401 when
// status is 0) instead of validating them. The SDK treats 401 as fatal.
func (s *Server) FailCBS(n int, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		status = int(statusUnauthorized)
	}
	s.faults.cbsFailures, s.faults.cbsStatus = n, int32(status)
}

// ExpireLocks ends every message lock on queue name now, as if the lock
// durations had passed: each message becomes available again (or is
// dead-lettered past its maximum delivery count), and settling or
// renewing it yields lock lost. It returns how many locks ended.
func (s *Server) ExpireLocks(name string) (int, error) {
	return onQueue(s, name, func(q *queue) int {
		now := s.clock.Now()
		n := 0
		for _, m := range slices.Clone(q.bySeq) {
			if !m.gone && m.state == stLocked {
				q.unlock(m, true, now)
				n++
			}
		}
		q.dispatch()
		return n
	})
}

// ExpireLock ends one message lock now, identified by the lock token the
// SDK reports (ReceivedMessage.LockToken). It reports whether the lock
// was held.
func (s *Server) ExpireLock(name string, lockToken [16]byte) (bool, error) {
	return onQueue(s, name, func(q *queue) bool {
		m := q.locks[amqp.UUID(lockToken)]
		if m == nil {
			return false
		}
		q.unlock(m, true, s.clock.Now())
		q.dispatch()
		return true
	})
}

// ExpireSessionLock ends the lock on one session now: its receiver's link
// is detached with com.microsoft:session-lock-lost and its locked messages
// become available again. It reports whether the session was locked.
func (s *Server) ExpireSessionLock(name, sessionID string) (bool, error) {
	return onQueue(s, name, func(q *queue) bool {
		g := q.groups[sessionID]
		if g == nil || g.holder == nil {
			return false
		}
		g.holder.forceDetach(&amqp.Error{Condition: condSessionLockLost, Description: fmt.Sprintf("the lock on session %q was ended by devbus (fault injected)", sessionID)})
		return true
	})
}

// PauseDispatch stops handing messages (and sessions) of queue name to
// receivers; sends, settlements and management still work.
func (s *Server) PauseDispatch(name string) error {
	return s.setPaused(name, true)
}

// ResumeDispatch undoes PauseDispatch.
func (s *Server) ResumeDispatch(name string) error {
	return s.setPaused(name, false)
}

func (s *Server) setPaused(name string, paused bool) error {
	_, err := onQueue(s, name, func(q *queue) struct{} {
		q.paused = paused
		q.dispatch()
		return struct{}{}
	})
	return err
}
