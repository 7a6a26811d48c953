package bus

import (
	"context"
	"errors"
	"github.com/google/uuid"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/writeback"
)

// runSessions is one session slot: it accepts the next available session,
// handles its messages in order, releases it when idle, and starts over.
func (c *Consumer) runSessions() {
	defer c.wg.Done()
	backoff := c.o.ErrorBackoff
	for c.recvCtx.Err() == nil {
		if !c.waitIntake() {
			return
		}
		ctx, cancel := context.WithTimeout(c.recvCtx, c.o.AcceptTimeout)
		sr, err := c.client.AcceptNextSessionForQueue(ctx, c.o.Queue, nil)
		cancel()
		switch {
		case c.recvCtx.Err() != nil:
			if err == nil {
				c.closeSession(sr, make(sdkGate, 1))
			}
			return
		case err == nil:
			c.health.ok(time.Now())
			backoff = c.o.ErrorBackoff
			c.holdSession(sr)
		case isTimeout(err):
			c.health.ok(time.Now()) // the broker answered: no session is waiting
		case errors.Is(err, context.DeadlineExceeded):
			// Our own wait ended before the broker's answer; no news either way.
		default:
			c.health.fail(err, time.Now())
			c.m.BusReconnect()
			if !sleep(c.recvCtx, c.receiveFailed("accepting a session failed; retrying", err, backoff)) {
				return
			}
			backoff = nextBackoff(backoff)
		}
	}
}

// probeSessions keeps readiness current on a session queue. Waiting for the
// next session gives no answer at all while the queue is idle (the broker
// holds the request until a session arrives or its own wait ends), so a
// healthy agent would look "not connected" for that long. The probe
// accepts a session of its own, which no sender uses, and releases it at
// once: the broker's answer proves the connection, the credentials and the
// Listen right. It runs at start and whenever nothing else has answered
// for a while.
func (c *Consumer) probeSessions() {
	defer c.wg.Done()
	id := "wbagent-probe-" + uuid.NewString() // this consumer's alone: no sender, no other agent uses it
	every := max(c.o.AcceptTimeout/2, time.Second)
	for {
		if c.health.since(time.Now()) >= every {
			err := c.bounded(c.recvCtx, func(ctx context.Context) error {
				sr, err := c.client.AcceptSessionForQueue(ctx, c.o.Queue, id, nil)
				if err != nil {
					return err
				}
				return sr.Close(ctx)
			})
			c.probed(err)
		}
		if !sleep(c.recvCtx, every) {
			return
		}
	}
}

// holdSession handles a session's messages one at a time, in order, while
// renewing the session lock, and releases the session once no message comes
// for SessionIdleTimeout, the lock is lost, or the consumer stops.
func (c *Consumer) holdSession(sr *azservicebus.SessionReceiver) {
	log := c.log.With(zap.String(logging.FieldSessionID, sr.SessionID()))
	log.Debug("session accepted")
	sessCtx, lost := context.WithCancel(c.workCtx)
	defer lost()
	renewCtx, stopRenew := context.WithCancel(context.Background())
	renewed := make(chan struct{})
	// Read here, before the renewal runs beside other calls on sr: the
	// SDK rewrites the receiver's lock time whenever it recovers the
	// link, unsynchronised, so LockedUntil must not be read concurrently
	// with those calls.
	lockedUntil := sr.LockedUntil()
	gate := make(sdkGate, 1)
	go func() {
		defer close(renewed)
		c.renewSessionLock(renewCtx, sr, gate, lockedUntil, lost, log)
	}()
	state := &sessionState{sr: sr, gate: gate, bounded: c.bounded}
	for c.recvCtx.Err() == nil && sessCtx.Err() == nil {
		if c.paused() {
			break // release the session: its messages wait on the queue
		}
		ctx, cancel := context.WithTimeout(c.recvCtx, c.o.SessionIdleTimeout)
		var msgs []*azservicebus.ReceivedMessage
		err := gate.do(ctx, func(ctx context.Context) error {
			var err error
			msgs, err = sr.ReceiveMessages(ctx, 1, nil)
			return err
		})
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			if !isLockLost(err) {
				c.health.fail(err, time.Now())
			}
			log.Warn("receiving from the session failed; releasing it", errField(err))
			break
		}
		if len(msgs) == 0 {
			break // idle: let another agent (or slot) have it
		}
		c.health.ok(time.Now())
		received := time.Now()
		done := c.m.InFlight()
		out := c.handle(sessCtx, msgs[0], state)
		out = c.execute(gatedSettler{sr, gate}, msgs[0], received, out)
		done()
		if out.Settle != writeback.Abandon && !c.sessionHasMore(sr, gate, msgs[0]) {
			break
		}
	}
	stopRenew()
	<-renewed
	c.closeSession(sr, gate)
	log.Debug("session released")
}

// sessionHasMore reports whether the session has a message after m. Most
// sessions carry one request (one user's password change), and waiting
// SessionIdleTimeout on each empty session would hold a slot idle that
// another session's requests are queued for; a peek tells at once. When the
// peek fails the answer is yes, and the idle wait decides as before.
func (c *Consumer) sessionHasMore(sr *azservicebus.SessionReceiver, gate sdkGate, m *azservicebus.ReceivedMessage) bool {
	if m.SequenceNumber == nil {
		return true
	}
	from := *m.SequenceNumber + 1
	var next []*azservicebus.ReceivedMessage
	err := c.bounded(c.recvCtx, func(ctx context.Context) error {
		return gate.do(ctx, func(ctx context.Context) error {
			var err error
			next, err = sr.PeekMessages(ctx, 1, &azservicebus.PeekMessagesOptions{FromSequenceNumber: &from})
			return err
		})
	})
	return err != nil || len(next) > 0
}

func (c *Consumer) closeSession(sr *azservicebus.SessionReceiver, gate sdkGate) {
	if err := c.bounded(context.Background(), func(ctx context.Context) error { return gate.do(ctx, sr.Close) }); err != nil {
		c.log.Warn("closing a session failed; the broker releases it when its lock expires",
			zap.String(logging.FieldSessionID, sr.SessionID()), errField(err))
	}
}

// renewSessionLock keeps the session lock alive until ctx ends; messages of
// a session have no locks of their own. When the lock is lost it calls lost.
// It never reads sr.LockedUntil (see holdSession): a renewal granted at t
// lasts until t plus the lock duration, which the first lock shows.
func (c *Consumer) renewSessionLock(ctx context.Context, sr *azservicebus.SessionReceiver, gate sdkGate, lockedUntil time.Time, lost func(), log *zap.Logger) {
	lockFor := time.Until(lockedUntil) // a little under the lock duration: renewals come early, never late
	if lockFor <= 0 {
		lockFor = c.o.SettleTimeout
	}
	for {
		if !sleep(ctx, renewDelay(time.Until(lockedUntil))) {
			return
		}
		asked := time.Now()
		err := c.bounded(ctx, func(ctx context.Context) error {
			return gate.do(ctx, func(ctx context.Context) error { return sr.RenewSessionLock(ctx, nil) })
		})
		if ctx.Err() != nil {
			return
		}
		c.m.LockRenewal(err == nil)
		if err == nil {
			lockedUntil = asked.Add(lockFor)
			continue
		}
		if isLockLost(err) || time.Now().After(lockedUntil) {
			log.Warn("session lock lost; its messages will be redelivered", errField(err))
			lost()
			return
		}
		log.Warn("renewing the session lock failed; retrying", errField(err))
	}
}

// sessionState gives the handler the session state, read once per held
// session: while this agent holds the session lock no one else can change
// it, so later reads come from memory.
type sessionState struct {
	sr      *azservicebus.SessionReceiver
	gate    sdkGate
	bounded func(context.Context, func(context.Context) error) error
	mu      sync.Mutex
	loaded  bool
	state   []byte
}

// Get implements writeback.SessionState.
func (s *sessionState) Get(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		return clone(s.state), nil
	}
	var st []byte
	err := s.bounded(ctx, func(ctx context.Context) error {
		return s.gate.do(ctx, func(ctx context.Context) error {
			var err error
			st, err = s.sr.GetSessionState(ctx, nil)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	s.state, s.loaded = clone(st), true
	return clone(st), nil
}

// Set implements writeback.SessionState.
func (s *sessionState) Set(ctx context.Context, state []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := clone(state)
	err := s.bounded(ctx, func(ctx context.Context) error {
		return s.gate.do(ctx, func(ctx context.Context) error { return s.sr.SetSessionState(ctx, v, nil) })
	})
	if err != nil {
		// The broker may or may not have stored it: read it again next time.
		s.loaded = false
		return err
	}
	s.state, s.loaded = v, true
	return nil
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// sdkGate lets one call at a time reach a session receiver. The SDK
// (azservicebus v1.11.0) writes the receiver's lock time without
// synchronisation both in RenewSessionLock and whenever a call recovers
// the link, so the renewal beside a receive, peek, settle or state call is
// a data race inside the SDK. Waiting for the gate ends with the caller's
// context, so a call the SDK never returns from cannot hold a session slot
// for good: the lock then expires and the broker redelivers.
type sdkGate chan struct{}

func (g sdkGate) do(ctx context.Context, f func(context.Context) error) error {
	select {
	case g <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g }()
	return f(ctx)
}

// gatedSettler settles a session's messages through its gate.
type gatedSettler struct {
	sr   *azservicebus.SessionReceiver
	gate sdkGate
}

func (s gatedSettler) CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error {
	return s.gate.do(ctx, func(ctx context.Context) error { return s.sr.CompleteMessage(ctx, m, o) })
}

func (s gatedSettler) AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error {
	return s.gate.do(ctx, func(ctx context.Context) error { return s.sr.AbandonMessage(ctx, m, o) })
}

func (s gatedSettler) DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error {
	return s.gate.do(ctx, func(ctx context.Context) error { return s.sr.DeadLetterMessage(ctx, m, o) })
}
