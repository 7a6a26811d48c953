package bus

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/logging"
)

// plainLink is one receiver of a plain queue. A message is settled and
// its lock renewed on the receiver that received it, so a replaced
// receiver is closed only once its messages are done.
type plainLink struct {
	r        *azservicebus.Receiver
	inflight sync.WaitGroup
}

// receiveNow asks the SDK to return as soon as one message arrives: by
// default it waits 20 ms for more, which every request would pay while the
// queue is not full.
var receiveNow = &azservicebus.ReceiveMessagesOptions{TimeAfterFirstMessage: time.Nanosecond}

// runPlain receives from a queue without sessions, keeping at most
// MaxConcurrent messages in flight: it asks the broker only for as many
// messages as it has free slots, so no message waits, locked, in a local
// buffer.
func (c *Consumer) runPlain() {
	defer c.wg.Done()
	slots := make(chan struct{}, c.o.MaxConcurrent)
	backoff := c.o.ErrorBackoff
	link := c.link
	c.probe(link)
	for {
		if !c.waitIntake() {
			return
		}
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
		msgs, err := link.r.ReceiveMessages(ctx, n, receiveNow)
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
			// A link that stays silent while the queue holds messages, or
			// a broker that does not answer the peek, gets a new receiver.
			if answered, waiting := c.probe(link); !answered || waiting {
				link = c.replaceLink(link)
			}
			continue
		case err == nil:
			// Nothing, no error, and before the poll's end: after some
			// detaches (server-busy) the SDK's receiver answers every
			// receive like this at once, for good. Receive on a new link,
			// after a pause so that a broker in trouble is not hammered.
			c.log.Warn("the receiver returned early with no message and no error; receiving on a new link", zap.Duration("after", backoff))
			if !sleep(c.recvCtx, backoff) {
				return
			}
			backoff = nextBackoff(backoff)
			link = c.replaceLink(link)
			continue
		case err != nil:
			c.health.fail(err, time.Now())
			c.m.BusReconnect()
			if !sleep(c.recvCtx, c.receiveFailed("receiving failed; retrying", err, backoff)) {
				return
			}
			backoff = nextBackoff(backoff)
			continue
		}
		for _, m := range msgs {
			c.wg.Add(1)
			link.inflight.Add(1)
			go func() {
				defer c.wg.Done()
				defer func() { <-slots }()
				defer link.inflight.Done()
				c.processPlain(link, m)
			}()
		}
	}
}

// probe checks that the broker answers on the link, for readiness while the
// queue is empty; waiting reports whether the queue holds a message
// (available, or locked by a consumer).
func (c *Consumer) probe(link *plainLink) (answered, waiting bool) {
	// The peek may outlive bounded (a silent broker): it must not write
	// the results after probe has returned.
	var seen atomic.Bool
	err := c.bounded(c.recvCtx, func(ctx context.Context) error {
		msgs, err := link.r.PeekMessages(ctx, 1, nil)
		seen.Store(len(msgs) > 0)
		return err
	})
	if c.probed(err) {
		return true, seen.Load()
	}
	return false, false
}

// replaceLink receives on a new receiver from now on, and closes old once
// the messages received on it are settled.
func (c *Consumer) replaceLink(old *plainLink) *plainLink {
	if c.recvCtx.Err() != nil {
		return old
	}
	r, err := c.client.NewReceiverForQueue(c.o.Queue, nil)
	if err != nil {
		c.log.Warn("creating a new receiver failed; keeping the old one", errField(err))
		return old
	}
	nl := &plainLink{r: r}
	c.linkMu.Lock()
	c.link = nl
	c.linkMu.Unlock()
	c.m.BusReconnect()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		old.inflight.Wait()
		if err := c.bounded(context.Background(), old.r.Close); err != nil {
			c.log.Debug("closing the replaced receiver failed", errField(err))
		}
	}()
	return nl
}

// processPlain handles one message of a plain queue, renewing its lock
// until it is settled.
func (c *Consumer) processPlain(link *plainLink, m *azservicebus.ReceivedMessage) {
	received := time.Now()
	defer c.m.InFlight()()
	handleCtx, lost := context.WithCancel(c.workCtx)
	defer lost()
	renewCtx, stopRenew := context.WithCancel(context.Background())
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		c.renewMessageLock(renewCtx, link.r, m, lost)
	}()
	out := c.handle(handleCtx, m, nil)
	c.execute(link.r, m, received, out)
	stopRenew()
	<-renewed
}

// renewMessageLock keeps m's lock alive until ctx ends. When the lock is
// lost it calls lost, so the handler stops early: the message will be
// redelivered anyway.
func (c *Consumer) renewMessageLock(ctx context.Context, r *azservicebus.Receiver, m *azservicebus.ReceivedMessage, lost func()) {
	lockedUntil := time.Now().Add(c.o.SettleTimeout)
	if m.LockedUntil != nil {
		lockedUntil = *m.LockedUntil
	}
	for {
		if !sleep(ctx, renewDelay(time.Until(lockedUntil))) {
			return
		}
		err := c.bounded(ctx, func(ctx context.Context) error { return r.RenewMessageLock(ctx, m, nil) })
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
				zap.String(logging.FieldMessageID, m.MessageID), errField(err))
			lost()
			return
		}
		c.log.Warn("renewing the message lock failed; retrying", zap.String(logging.FieldMessageID, m.MessageID), errField(err))
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
