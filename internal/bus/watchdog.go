package bus

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/writeback"
)

// Watched is a Consumer with a watchdog: when the broker has given no
// answer at all (no message, no accepted session, no peek, no "nothing
// waiting") for the watchdog period while the consumer is receiving (not
// while every slot is taken by a writeback), it
// makes a new client, so a new connection, and a new Consumer on it, and
// retires the old ones. The SDK has known cases of receivers and
// connections that stop delivering without reporting an error, and its own
// recovery only starts after an error.
//
// Work in flight on the old consumer keeps its grace period (SettleTimeout)
// to settle; what it cannot settle is redelivered when its lock expires.
type Watched struct {
	conn  Connection
	h     Handler
	o     Options
	after time.Duration
	log   *zap.Logger

	mu      sync.Mutex
	client  *azservicebus.Client
	c       *Consumer
	busy    *busyHandler
	built   time.Time
	stopped bool
	retired sync.WaitGroup // old consumers finishing their work

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewWatched makes the client and consumer; watchdog is the period without
// an answer after which both are rebuilt (servicebus.watchdog). It does not
// connect; Start does.
func NewWatched(conn Connection, h Handler, o Options, watchdog time.Duration) (*Watched, error) {
	if watchdog <= 0 {
		return nil, errors.New("bus watchdog: the period must be positive (servicebus.watchdog)")
	}
	// An idle consumer answers once per receive poll: polls must be well
	// inside the period, or an idle bus would look stalled.
	if o.AcceptTimeout > watchdog/3 {
		o.AcceptTimeout = max(watchdog/3, 100*time.Millisecond)
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	w := &Watched{conn: conn, h: h, o: o, after: watchdog,
		log:  o.Logger.With(zap.String(logging.FieldComponent, "bus"), zap.String(logging.FieldQueue, o.Queue)),
		stop: make(chan struct{}), done: make(chan struct{})}
	client, c, busy, err := w.build()
	if err != nil {
		return nil, err
	}
	w.client, w.c, w.busy = client, c, busy
	return w, nil
}

func (w *Watched) build() (*azservicebus.Client, *Consumer, *busyHandler, error) {
	client, err := NewClient(w.conn)
	if err != nil {
		return nil, nil, nil, err
	}
	// New refuses a MaxConcurrent below 1 (the config owns the default).
	busy := &busyHandler{h: w.h, slots: int64(w.o.MaxConcurrent)}
	c, err := New(client, busy, w.o)
	if err != nil {
		closeClient(client)
		return nil, nil, nil, err
	}
	return client, c, busy, nil
}

// busyHandler counts the writebacks in flight, so that the watchdog can
// tell a silent broker from a consumer that is not asking it for
// anything: with every slot taken by a long writeback, a plain queue's
// consumer neither receives nor probes.
type busyHandler struct {
	h     Handler
	slots int64

	mu       sync.Mutex
	inFlight int64
	freed    time.Time // when every slot was last taken
}

func (b *busyHandler) Handle(ctx context.Context, d writeback.Delivery) writeback.Outcome {
	b.mu.Lock()
	b.inFlight++
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		if b.inFlight >= b.slots {
			b.freed = time.Now()
		}
		b.inFlight--
		b.mu.Unlock()
	}()
	return b.h.Handle(ctx, d)
}

// idleSince is how long receiving has been possible without a break:
// zero while every slot is taken.
func (b *busyHandler) idleSince(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case b.inFlight >= b.slots:
		return 0
	case b.freed.IsZero():
		return time.Duration(1<<63 - 1)
	}
	return now.Sub(b.freed)
}

// Start begins receiving and watching; it returns at once.
func (w *Watched) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.Start(); err != nil {
		return err
	}
	w.built = time.Now()
	go w.watch()
	return nil
}

// watch checks the consumer's last broker answer a few times per period.
func (w *Watched) watch() {
	defer close(w.done)
	t := time.NewTicker(max(w.after/8, 50*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		now := time.Now()
		silent := min(w.c.health.since(now), now.Sub(w.built), w.busy.idleSince(now))
		w.mu.Unlock()
		if silent >= w.after {
			w.rebuild(silent)
		}
	}
}

// rebuild replaces the client and consumer; the old consumer stops in the
// background with SettleTimeout as its grace period.
func (w *Watched) rebuild(silent time.Duration) {
	w.log.Warn("service bus gave no answer while receiving: rebuilding the connection and receivers",
		zap.Duration("silentFor", silent), zap.Duration("watchdog", w.after))
	w.o.Metrics.BusWatchdogRebuild()
	client, c, busy, err := w.build()
	if err == nil {
		err = c.Start()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		if err == nil {
			w.retire(client, c)
		}
		return
	}
	if err != nil {
		// Keep the old one and try again after another period.
		w.log.Error("rebuilding the service bus client failed; keeping the old one", zap.Error(err))
		w.built = time.Now()
		return
	}
	w.retire(w.client, w.c)
	w.client, w.c, w.busy, w.built = client, c, busy, time.Now()
}

// retire stops c and closes client in the background. w.mu is held.
func (w *Watched) retire(client *azservicebus.Client, c *Consumer) {
	w.retired.Add(1)
	go func() {
		defer w.retired.Done()
		ctx, cancel := context.WithTimeout(context.Background(), w.o.SettleTimeout)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			w.log.Warn("stopping the replaced consumer", zap.Error(err))
		}
		closeClient(client)
	}()
}

// Ready reports whether the current consumer's broker answers.
func (w *Watched) Ready() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c.Ready()
}

// Stop stops watching and receiving, lets in-flight work finish until ctx
// ends (see Consumer.Stop), and closes the connection.
func (w *Watched) Stop(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	w.mu.Lock()
	started := !w.built.IsZero()
	w.stopped = true
	c, client := w.c, w.client
	w.mu.Unlock()
	if started {
		<-w.done
	}
	err := c.Stop(ctx)
	w.retired.Wait()
	closeClient(client)
	return err
}

// Close releases the client of a Watched that was never started.
func (w *Watched) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.built.IsZero() && !w.stopped {
		w.stopped = true
		closeClient(w.client)
	}
}

func closeClient(c *azservicebus.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}
