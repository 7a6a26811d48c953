package bus

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/telemetry"
	"wbagent/internal/wire"
	"wbagent/internal/writeback"
)

// Handler decides what to do with one delivery; *writeback.Handler is the
// real one. Handle must return promptly once ctx ends (stop, lost lock),
// with an Abandon outcome if the work is not done.
type Handler interface {
	Handle(ctx context.Context, d writeback.Delivery) writeback.Outcome
}

// Options configure a Consumer. The config owns every default
// (internal/config): a zero count or duration here is an error, never a
// hidden default of its own.
type Options struct {
	// Queue is the request queue.
	Queue string
	// Namespace names the Service Bus namespace in diagnostics (a queue
	// that does not exist); empty leaves it out.
	Namespace string
	// Sessions selects the session-queue mode (servicebus.sessions).
	Sessions bool
	// MaxConcurrent is the number of sessions held at once (session mode)
	// or messages in flight at once (plain mode): servicebus.maxConcurrent.
	MaxConcurrent int
	// SettleTimeout bounds every settle, reply send, lock renewal and
	// session-state call: servicebus.settleTimeout.
	SettleTimeout time.Duration
	// SessionIdleTimeout is how long a held session waits for its next
	// message before it is released for other agents:
	// servicebus.sessionIdleTimeout.
	SessionIdleTimeout time.Duration
	// AcceptTimeout is how long one wait for the next available session
	// (or, on plain queues, one receive poll) lasts before it starts over
	// (config.BusAcceptTimeout).
	AcceptTimeout time.Duration
	// ErrorBackoff is the first pause after a failed receive; it doubles up
	// to 30s while failures continue (config.BusErrorBackoff).
	ErrorBackoff time.Duration
	// Intake, when set, is asked before each receive whether the agent may
	// take a message (*writeback.Handler.Intake); while it returns an
	// error the consumer receives nothing and asks again every second.
	Intake func(ctx context.Context) error
	// Metrics records outcomes, in-flight work, lock renewals and
	// reconnects; nil records nothing.
	Metrics *telemetry.Metrics
	// Logger receives operational logs; nil discards them.
	Logger *zap.Logger
}

const maxErrorBackoff = 30 * time.Second

func (o *Options) check() error {
	if o.Queue == "" {
		return errors.New("bus options: the queue name is empty: set servicebus.queue")
	}
	if o.MaxConcurrent < 1 {
		return fmt.Errorf("bus options: maxConcurrent %d: use 1 or more (servicebus.maxConcurrent)", o.MaxConcurrent)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"settleTimeout", o.SettleTimeout}, {"sessionIdleTimeout", o.SessionIdleTimeout},
		{"acceptTimeout", o.AcceptTimeout}, {"errorBackoff", o.ErrorBackoff},
	} {
		if d.v <= 0 {
			return fmt.Errorf("bus options: %s %s: give a positive duration (the config's default when unset)", d.name, d.v)
		}
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return nil
}

// Consumer receives requests from one queue and carries out the handler's
// outcomes. Make one with New, then Start and Stop it once.
type Consumer struct {
	client  *azservicebus.Client
	handler Handler
	o       Options
	log     *zap.Logger
	m       *telemetry.Metrics
	replies *replySenders
	health  health
	gate    intakeGate

	// recvCtx ends when Stop begins: no new message or session is taken.
	recvCtx  context.Context
	stopRecv context.CancelFunc
	// workCtx ends when the grace period is over: in-flight handlers
	// abandon their messages.
	workCtx    context.Context
	cancelWork context.CancelFunc

	started atomic.Bool
	stopped atomic.Bool
	// missingLogged is when a missing request queue was last logged
	// (UnixNano), so that retries do not flood the log.
	missingLogged atomic.Int64
	wg            sync.WaitGroup

	// linkMu guards link, the receiver a plain queue is read from now
	// (plain mode only; see plainLink).
	linkMu sync.Mutex
	link   *plainLink
}

// New makes a consumer for opts.Queue. It does not connect; Start does.
func New(client *azservicebus.Client, h Handler, opts Options) (*Consumer, error) {
	if client == nil || h == nil {
		return nil, errors.New("bus: a client and a handler are required")
	}
	if err := opts.check(); err != nil {
		return nil, err
	}
	c := &Consumer{client: client, handler: h, o: opts, m: opts.Metrics}
	c.log = opts.Logger.With(zap.String(logging.FieldComponent, "bus"), zap.String(logging.FieldQueue, opts.Queue))
	c.replies = newReplySenders(client, c.bounded)
	c.health.staleAfter = 3*opts.AcceptTimeout + opts.SettleTimeout
	c.health.queue, c.health.namespace = opts.Queue, opts.Namespace
	c.recvCtx, c.stopRecv = context.WithCancel(context.Background())
	c.workCtx, c.cancelWork = context.WithCancel(context.Background())
	return c, nil
}

// Start begins receiving in background goroutines and returns at once.
func (c *Consumer) Start() error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("bus: consumer already started")
	}
	if c.o.Sessions {
		for i := 0; i < c.o.MaxConcurrent; i++ {
			c.wg.Add(1)
			go c.runSessions()
		}
		c.wg.Add(1)
		go c.probeSessions()
		c.log.Info("receiving from session queue", zap.Int("maxSessions", c.o.MaxConcurrent))
		return nil
	}
	r, err := c.client.NewReceiverForQueue(c.o.Queue, nil)
	if err != nil {
		return fmt.Errorf("bus: create receiver for queue %q: %w", c.o.Queue, err)
	}
	c.link = &plainLink{r: r}
	c.wg.Add(1)
	go c.runPlain()
	c.log.Info("receiving from queue", zap.Int("maxInFlight", c.o.MaxConcurrent))
	return nil
}

// Stop stops taking messages, lets in-flight writebacks finish until ctx
// ends (the grace period), then makes the remaining ones abandon their
// messages for redelivery, and closes receivers and reply senders. It
// returns an error only if some work did not end even after that. A second
// call returns at once.
func (c *Consumer) Stop(ctx context.Context) error {
	if !c.stopped.CompareAndSwap(false, true) {
		return nil
	}
	c.stopRecv()
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		c.log.Warn("grace period over: abandoning in-flight writebacks for redelivery")
		c.cancelWork()
		// Handlers return at once when cancelled; what remains is one
		// bounded settle and one bounded session close per worker.
		t := time.NewTimer(2*c.o.SettleTimeout + time.Second)
		select {
		case <-done:
		case <-t.C:
			err = errors.New("bus stop: some writebacks did not end after the grace period; their messages will be redelivered when their locks expire")
		}
		t.Stop()
	}
	c.cancelWork()
	c.linkMu.Lock()
	link := c.link
	c.linkMu.Unlock()
	if link != nil {
		if cerr := c.bounded(context.Background(), link.r.Close); cerr != nil {
			c.log.Warn("closing receiver failed", errField(cerr))
		}
	}
	c.replies.closeAll()
	return err
}

// Ready reports whether the bus answers: nil once receiving works and while
// no failure newer than the last success is known.
func (c *Consumer) Ready() error { return c.health.ready(time.Now()) }

// bounded runs f with a context that ends after SettleTimeout, and returns
// when that context ends even if f does not: after a dropped connection an
// SDK call can block for good, and lock expiry makes giving up safe.
func (c *Consumer) bounded(parent context.Context, f func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, c.o.SettleTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no answer within %s: %w", c.o.SettleTimeout, ctx.Err())
	}
}

// settler is what receivers and session receivers share for settling.
type settler interface {
	CompleteMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.CompleteMessageOptions) error
	AbandonMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.AbandonMessageOptions) error
	DeadLetterMessage(ctx context.Context, m *azservicebus.ReceivedMessage, o *azservicebus.DeadLetterOptions) error
}

// handle runs the handler on one message. A panic in the handler becomes an
// abandon: bad input must never crash the agent, and redelivery (then
// dead-lettering by the broker's max delivery count) takes it from there.
func (c *Consumer) handle(ctx context.Context, m *azservicebus.ReceivedMessage, st writeback.SessionState) (out writeback.Outcome) {
	d := writeback.Delivery{Message: FromServiceBus(m), DeliveryCount: int(m.DeliveryCount), Session: st}
	if m.EnqueuedTime != nil {
		d.EnqueuedAt = *m.EnqueuedTime
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("writeback handler panicked; abandoning the message",
				zap.String(logging.FieldMessageID, m.MessageID), zap.Any("panic", r), zap.ByteString("stack", debug.Stack()))
			out = writeback.Outcome{Settle: writeback.Abandon, RequestID: m.MessageID, Code: wire.CodeInternalError,
				Err: fmt.Errorf("handler panicked: %v", r)}
		}
	}()
	return c.handler.Handle(ctx, d)
}

// execute carries out an outcome: the reply first, then the settlement.
// A request is completed (or dead-lettered) only after its result has been
// accepted by the broker: a result that cannot be sent, or an outcome that
// names a reply queue but carries no result, turns the settlement into an
// abandon, and the redelivery is answered again from the ledger.
func (c *Consumer) execute(s settler, m *azservicebus.ReceivedMessage, received time.Time, out writeback.Outcome) writeback.Outcome {
	settle := out.Settle
	if settle != writeback.Complete && settle != writeback.DeadLetter {
		settle = writeback.Abandon
	}
	log := c.log.With(zap.String(logging.FieldRequestID, out.RequestID), zap.String(logging.FieldMessageID, m.MessageID))
	if out.ReplyTo != "" && out.Reply == nil && settle != writeback.Abandon {
		log.Error("the outcome names a reply queue but holds no result; abandoning the message rather than completing it unanswered",
			zap.String(logging.FieldQueue, out.ReplyTo))
		settle = writeback.Abandon
	}
	if out.Reply != nil && out.ReplyTo != "" && settle != writeback.Abandon {
		err := c.replies.send(out.ReplyTo, out.Reply)
		if err != nil {
			if IsNotFound(err) {
				err = &MissingQueueError{Queue: out.ReplyTo, Namespace: c.o.Namespace,
					Fix: "have the sender name an existing queue in ReplyTo", Err: err}
			}
			c.health.replyFailed(out.ReplyTo, err, time.Now())
			log.Warn("sending the result failed; abandoning the message so the result is sent again on redelivery",
				zap.String(logging.FieldQueue, out.ReplyTo), errField(err))
			settle = writeback.Abandon
		} else {
			c.health.ok(time.Now())
			c.health.replySent(out.ReplyTo)
		}
	}
	var err error
	switch settle {
	case writeback.Complete:
		err = c.bounded(context.Background(), func(ctx context.Context) error { return s.CompleteMessage(ctx, m, nil) })
	case writeback.DeadLetter:
		reason, desc := out.DeadLetterReason, out.DeadLetterDescription
		err = c.bounded(context.Background(), func(ctx context.Context) error {
			return s.DeadLetterMessage(ctx, m, &azservicebus.DeadLetterOptions{Reason: &reason, ErrorDescription: &desc})
		})
	default:
		err = c.bounded(context.Background(), func(ctx context.Context) error { return s.AbandonMessage(ctx, m, nil) })
	}
	switch {
	case err == nil:
		c.health.ok(time.Now())
	case isLockLost(err):
		log.Warn("settling failed: the lock was lost; the message will be redelivered", zap.String(logging.FieldSettle, settle.String()))
	default:
		c.health.fail(err, time.Now())
		log.Warn("settling failed; the message will be redelivered when its lock expires",
			zap.String(logging.FieldSettle, settle.String()), errField(err))
	}
	out.Settle = settle
	fields := []zap.Field{zap.String(logging.FieldOp, out.Op), zap.String(logging.FieldCode, out.Code),
		zap.String(logging.FieldSettle, settle.String()), zap.Int("deliveryCount", int(m.DeliveryCount)),
		zap.Duration(logging.FieldDuration, out.Duration)}
	if out.Detail != "" {
		fields = append(fields, zap.String(logging.FieldDetail, out.Detail))
	}
	if out.DeadLetterReason != "" && settle == writeback.DeadLetter {
		fields = append(fields, zap.String(logging.FieldReason, out.DeadLetterReason))
	}
	if out.Err != nil {
		fields = append(fields, zap.Error(out.Err))
	}
	log.Info("message handled", fields...)
	c.record(out, time.Since(received))
	return out
}

// record puts one carried-out outcome into the metrics.
func (c *Consumer) record(out writeback.Outcome, took time.Duration) {
	c.m.Request(out.Op, out.Code, took)
	if out.QueueWait > 0 {
		c.m.QueueWait(out.QueueWait)
	}
	if out.Attempts > 0 {
		c.m.DirectoryTime(out.Op, out.DirectoryTime)
		for i := 1; i < out.Attempts; i++ {
			c.m.Retry(out.Op)
		}
	}
	if out.Settle == writeback.DeadLetter {
		c.m.DeadLetter(out.DeadLetterReason)
	}
	if out.AuditFailed {
		c.m.AuditWriteFailure()
	}
}

// sleep waits d or until ctx ends, reporting whether it waited in full;
// the bus waits in real time, as the writeback handler's system clock does.
func sleep(ctx context.Context, d time.Duration) bool {
	return writeback.SystemClock{}.Sleep(ctx, d) == nil
}

// nextBackoff doubles d up to maxErrorBackoff.
func nextBackoff(d time.Duration) time.Duration {
	return min(2*d, maxErrorBackoff)
}

// errField logs a broker failure as a sentence with its condition
// (Describe), not as the SDK's struct dump.
func errField(err error) zap.Field {
	var mq *MissingQueueError
	if errors.As(err, &mq) {
		return zap.String("error", mq.Error())
	}
	return zap.String("error", Describe(err))
}

// probed records the answer of a readiness probe, plain or session, and
// reports whether the broker answered. A failure while the consumer stops
// is neither: only a live consumer's failed probe marks it unhealthy and is
// logged, a missing queue as receiveFailed says it, anything else as a
// silent broker.
func (c *Consumer) probed(err error) bool {
	switch {
	case err == nil:
		c.health.ok(time.Now())
		return true
	case c.recvCtx.Err() == nil:
		c.health.fail(err, time.Now())
		if IsNotFound(err) {
			c.receiveFailed("", err, 0)
		} else {
			c.log.Warn("service bus does not answer", errField(err))
		}
	}
	return false
}

// receiveFailed logs a failed accept or receive on the request queue and
// returns the pause before the next attempt. A queue that does not exist
// is logged as an error saying so, at most once a minute per consumer
// (every receiving goroutine meets it), and waits the longest pause: no
// retry can help before an admin acts.
func (c *Consumer) receiveFailed(msg string, err error, backoff time.Duration) time.Duration {
	if IsNotFound(err) {
		now := time.Now().UnixNano()
		last := c.missingLogged.Load()
		if now-last >= int64(time.Minute) && c.missingLogged.CompareAndSwap(last, now) {
			c.log.Error(MissingQueue(c.o.Queue, c.o.Namespace, "correct servicebus.queue")+"; the agent retries until it exists",
				zap.String("error", Describe(err)))
		}
		return maxErrorBackoff
	}
	c.log.Warn(msg, zap.Duration("after", backoff), errField(err))
	return backoff
}

// isLockLost reports whether err says the message or session lock is gone.
func isLockLost(err error) bool {
	var se *azservicebus.Error
	return errors.As(err, &se) && se.Code == azservicebus.CodeLockLost
}

// isTimeout reports whether err is the broker saying that no session
// became available in time, which proves the bus is reachable.
func isTimeout(err error) bool {
	var se *azservicebus.Error
	return errors.As(err, &se) && se.Code == azservicebus.CodeTimeout
}
