package bus

import (
	"context"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/logging"
)

// runPlain receives from a queue without sessions, keeping at most
// MaxConcurrent messages in flight: it asks the broker only for as many
// messages as it has free slots, so no message waits, locked, in a local
// buffer.
func (c *Consumer) runPlain() {
	defer c.wg.Done()
	slots := make(chan struct{}, c.o.MaxConcurrent)
	backoff := c.o.ErrorBackoff
	c.probe()
	for {
		select {
		case slots <- struct{}{}:
		case <-c.recvCtx.Done():
			return
		}
		n := 1
	fill:
		for n < c.o.MaxConcurrent {
			select {
			case slots <- struct{}{}:
				n++
			default:
				break fill
			}
		}
		ctx, cancel := context.WithTimeout(c.recvCtx, c.o.AcceptTimeout)
		msgs, err := c.receiver.ReceiveMessages(ctx, n, nil)
		polled := ctx.Err() != nil && c.recvCtx.Err() == nil
		cancel()
		for i := len(msgs); i < n; i++ {
			<-slots
		}
		switch {
		case len(msgs) > 0:
			c.health.ok(time.Now())
			backoff = c.o.ErrorBackoff
		case c.recvCtx.Err() != nil:
			return
		case polled:
			// An empty poll says nothing about the link: ask the broker.
			c.probe()
			continue
		case err != nil:
			c.health.fail(err, time.Now())
			c.m.BusReconnect()
			c.log.Warn("receiving failed; retrying", zap.Duration("after", backoff), zap.Error(err))
			if !sleep(c.recvCtx, backoff) {
				return
			}
			backoff = nextBackoff(backoff)
			continue
		}
		for _, m := range msgs {
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-slots }()
				c.processPlain(m)
			}()
		}
	}
}

// probe checks that the broker answers on the receiver's links, for
// readiness while the queue is empty.
func (c *Consumer) probe() {
	err := c.bounded(c.recvCtx, func(ctx context.Context) error {
		_, err := c.receiver.PeekMessages(ctx, 1, nil)
		return err
	})
	switch {
	case err == nil:
		c.health.ok(time.Now())
	case c.recvCtx.Err() == nil:
		c.health.fail(err, time.Now())
		c.log.Warn("service bus does not answer", zap.Error(err))
	}
}

// processPlain handles one message of a plain queue, renewing its lock
// until it is settled.
func (c *Consumer) processPlain(m *azservicebus.ReceivedMessage) {
	received := time.Now()
	defer c.m.InFlight()()
	handleCtx, lost := context.WithCancel(c.workCtx)
	defer lost()
	renewCtx, stopRenew := context.WithCancel(context.Background())
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renewMessageLock(renewCtx, m, lost)
	}()
	out := c.handle(handleCtx, m, nil)
	c.execute(c.receiver, m, received, out)
	stopRenew()
	<-renewed
}

// renewMessageLock keeps m's lock alive until ctx ends. When the lock is
// lost it calls lost, so the handler stops early: the message will be
// redelivered anyway.
func (c *Consumer) renewMessageLock(ctx context.Context, m *azservicebus.ReceivedMessage, lost func()) {
	lockedUntil := time.Now().Add(c.o.SettleTimeout)
	if m.LockedUntil != nil {
		lockedUntil = *m.LockedUntil
	}
	for {
		if !sleep(ctx, renewDelay(time.Until(lockedUntil))) {
			return
		}
		err := c.bounded(ctx, func(ctx context.Context) error { return c.receiver.RenewMessageLock(ctx, m, nil) })
		if ctx.Err() != nil {
			return
		}
		c.m.LockRenewal(err == nil)
		if err == nil {
			if m.LockedUntil != nil {
				lockedUntil = *m.LockedUntil
			}
			continue
		}
		if isLockLost(err) || time.Now().After(lockedUntil) {
			c.log.Warn("message lock lost; the message will be redelivered",
				zap.String(logging.FieldMessageID, m.MessageID), zap.Error(err))
			lost()
			return
		}
		c.log.Warn("renewing the message lock failed; retrying", zap.String(logging.FieldMessageID, m.MessageID), zap.Error(err))
	}
}

// renewDelay is how long to wait before renewing a lock that has remaining
// time left: half of it, so one failed renewal still leaves time for
// another, and never less than minRenewDelay so a failing renewal does not
// spin.
func renewDelay(remaining time.Duration) time.Duration {
	return max(remaining/2, minRenewDelay)
}

const minRenewDelay = 50 * time.Millisecond
