package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// health tracks whether the bus answers, from the outcomes of the calls the
// consumer makes anyway (accepts, receives, probes, sends, settles). A
// success older than staleAfter no longer counts: a receive that keeps
// timing out without an answer must not look healthy for ever.
type health struct {
	mu         sync.Mutex
	staleAfter time.Duration
	lastOK     time.Time
	err        error
	// queue and namespace name the request queue in a missing-queue
	// diagnosis.
	queue, namespace string
	// replyErr is the last failed result send, to replyQueue at replyAt.
	// It is kept apart from err: receiving and settling go on working
	// while results cannot leave, and their successes must not hide that.
	replyErr   error
	replyQueue string
	replyAt    time.Time
}

// replyFailed records a failed result send to queue.
func (h *health) replyFailed(queue string, err error, now time.Time) {
	if errors.Is(err, context.Canceled) {
		return
	}
	h.mu.Lock()
	h.replyErr, h.replyQueue, h.replyAt = err, queue, now
	h.mu.Unlock()
}

// replySent clears a failure of queue once a result to it is accepted.
func (h *health) replySent(queue string) {
	h.mu.Lock()
	if h.replyQueue == queue {
		h.replyErr, h.replyQueue = nil, ""
	}
	h.mu.Unlock()
}

// MissingQueueError is the broker saying a queue the agent uses does not
// exist (amqp:not-found). It is not a network problem: retrying cannot
// help until an admin creates the queue or corrects the name, and every
// message about it says so.
type MissingQueueError struct {
	Queue, Namespace string
	// Fix is what to do when the name is the mistake: correct the config
	// key of the request queue, or the sender's ReplyTo for a reply queue.
	Fix string
	Err error
}

func (e *MissingQueueError) Error() string { return MissingQueue(e.Queue, e.Namespace, e.Fix) }

func (e *MissingQueueError) Unwrap() error { return e.Err }

func (h *health) ok(now time.Time) {
	h.mu.Lock()
	h.lastOK, h.err = now, nil
	h.mu.Unlock()
}

// fail records err unless it is a cancellation of the consumer's own doing.
func (h *health) fail(err error, _ time.Time) {
	if errors.Is(err, context.Canceled) {
		return
	}
	var mq *MissingQueueError
	if !errors.As(err, &mq) && IsNotFound(err) {
		err = &MissingQueueError{Queue: h.queue, Namespace: h.namespace, Fix: "correct servicebus.queue", Err: err}
	}
	h.mu.Lock()
	h.err = err
	h.mu.Unlock()
}

// since returns how long ago the bus last answered; very long when never.
func (h *health) since(now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lastOK.IsZero() {
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(h.lastOK)
}

func (h *health) ready(now time.Time) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var mq *MissingQueueError
	switch {
	case errors.As(h.err, &mq):
		return mq
	case h.err != nil && IsUnauthorized(h.err):
		return fmt.Errorf("service bus refuses the agent's key or identity: %s", Describe(h.err))
	case h.err != nil && Condition(h.err) != "":
		return fmt.Errorf("service bus fails: %s", Describe(h.err))
	case h.err != nil:
		return fmt.Errorf("service bus unreachable: %s", Describe(h.err))
	case h.lastOK.IsZero():
		return errors.New("service bus: not connected yet")
	case now.Sub(h.lastOK) > h.staleAfter:
		return fmt.Errorf("service bus: no answer since %s", h.lastOK.UTC().Format(time.RFC3339))
	case h.replyErr != nil && now.Sub(h.replyAt) <= h.staleAfter:
		// A reply queue named by one sender: it counts for as long as a
		// success does, so one stray ReplyTo does not mark the agent
		// unready for good.
		var mq *MissingQueueError
		if errors.As(h.replyErr, &mq) {
			return mq
		}
		return fmt.Errorf("results cannot be sent to queue %s: %s", h.replyQueue, Describe(h.replyErr))
	}
	return nil
}
