package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// Client is the sender side of the benchmark: it puts signed requests on
// the request queue through the azservicebus SDK and takes the results off
// the reply queue in receive-and-delete mode (one round trip per batch,
// not per result, so the load generator is not what it measures). Result
// signatures are checked after a run, by Verify, to keep that work out of
// the measured interval.
type Client struct {
	keys     *testbed.Keys
	queue    string
	sessions bool
	reply    string
	sdk      *azservicebus.Client
	sender   *azservicebus.Sender
	recv     *azservicebus.Receiver
	stop     context.CancelFunc
	done     chan struct{}

	mu      sync.Mutex
	waiters map[string]chan Arrival
	got     []Arrival
	changed chan struct{}
	recvErr error
}

// Arrival is one result message and when it arrived.
type Arrival struct {
	Message protocol.Message
	At      time.Time
}

// NewClient connects to the bus; results for queue come back on reply.
func NewClient(bus *testbed.Bus, keys *testbed.Keys, queue string, sessions bool, reply string) (*Client, error) {
	sdk, err := testbed.NewClient(bus)
	if err != nil {
		return nil, fmt.Errorf("bench client: %w", err)
	}
	c := &Client{keys: keys, queue: queue, sessions: sessions, reply: reply, sdk: sdk,
		waiters: map[string]chan Arrival{}, changed: make(chan struct{}), done: make(chan struct{})}
	if c.sender, err = sdk.NewSender(queue, nil); err != nil {
		_ = sdk.Close(context.Background())
		return nil, fmt.Errorf("bench client: sender for %s: %w", queue, err)
	}
	c.recv, err = sdk.NewReceiverForQueue(reply, &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		_ = sdk.Close(context.Background())
		return nil, fmt.Errorf("bench client: receiver for %s: %w", reply, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go c.collect(ctx)
	return c, nil
}

func (c *Client) collect(ctx context.Context) {
	defer close(c.done)
	for ctx.Err() == nil {
		// Return as soon as something arrived: in receive-and-delete mode
		// the SDK otherwise waits a second for more, which would be
		// measured as latency.
		msgs, err := c.recv.ReceiveMessages(ctx, 512, &azservicebus.ReceiveMessagesOptions{TimeAfterFirstMessage: time.Nanosecond})
		now := time.Now()
		if err != nil && ctx.Err() == nil {
			c.mu.Lock()
			c.recvErr = err
			c.mu.Unlock()
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if len(msgs) == 0 {
			continue
		}
		c.mu.Lock()
		for _, rm := range msgs {
			a := Arrival{Message: testbed.FromReceived(rm), At: now}
			c.got = append(c.got, a)
			if w, ok := c.waiters[a.Message.CorrelationID]; ok {
				delete(c.waiters, a.Message.CorrelationID)
				w <- a
			}
		}
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

// Build seals and signs spec for this client's queue and reply queue.
func (c *Client) Build(spec protocol.RequestSpec) (protocol.Message, error) {
	spec.ReplyTo, spec.Session = c.reply, c.sessions
	return protocol.BuildRequest(c.keys.Signer, c.keys.Agent, spec)
}

// Call sends m and waits for its result; it returns the result and the
// time from the send to the result's arrival.
func (c *Client) Call(ctx context.Context, m protocol.Message) (*protocol.Result, time.Duration, error) {
	w := make(chan Arrival, 1)
	c.mu.Lock()
	c.waiters[m.MessageID] = w
	c.mu.Unlock()
	t0 := time.Now()
	if err := c.sender.SendMessage(ctx, testbed.ToSDK(m), nil); err != nil {
		c.forget(m.MessageID)
		return nil, 0, fmt.Errorf("send %s: %w", m.MessageID, err)
	}
	select {
	case a := <-w:
		res, err := protocol.ParseResult(a.Message.Body)
		return res, a.At.Sub(t0), err
	case <-ctx.Done():
		c.forget(m.MessageID)
		return nil, 0, fmt.Errorf("no result for %s: %w", m.MessageID, ctx.Err())
	}
}

func (c *Client) forget(id string) {
	c.mu.Lock()
	delete(c.waiters, id)
	c.mu.Unlock()
}

// SendAll puts msgs on the queue in as few batches as fit.
func (c *Client) SendAll(ctx context.Context, msgs []protocol.Message) error {
	for len(msgs) > 0 {
		b, err := c.sender.NewMessageBatch(ctx, nil)
		if err != nil {
			return fmt.Errorf("send backlog: new batch: %w", err)
		}
		n := 0
		for _, m := range msgs {
			err := b.AddMessage(testbed.ToSDK(m), nil)
			if errors.Is(err, azservicebus.ErrMessageTooLarge) {
				break
			}
			if err != nil {
				return fmt.Errorf("send backlog: add %s: %w", m.MessageID, err)
			}
			n++
		}
		if n == 0 {
			return fmt.Errorf("send backlog: message %s does not fit a batch", msgs[0].MessageID)
		}
		if err := c.sender.SendMessageBatch(ctx, b, nil); err != nil {
			return fmt.Errorf("send backlog: %w", err)
		}
		msgs = msgs[n:]
	}
	return nil
}

// WaitCount waits until n results have arrived since the last Reset and
// returns them.
func (c *Client) WaitCount(ctx context.Context, n int) ([]Arrival, error) {
	for {
		c.mu.Lock()
		got, ch, rerr := len(c.got), c.changed, c.recvErr
		if got >= n {
			out := append([]Arrival(nil), c.got...)
			c.mu.Unlock()
			return out, nil
		}
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d results arrived (last receive error: %v): %w", got, n, rerr, ctx.Err())
		}
	}
}

// Reset forgets the results received so far and returns them.
func (c *Client) Reset() []Arrival {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.got
	c.got = nil
	return out
}

// Verify checks the agent's signature on every result in as and counts
// the codes; a result that does not verify is an error.
func (c *Client) Verify(as []Arrival) (map[string]int, error) {
	codes := map[string]int{}
	for _, a := range as {
		r, err := protocol.VerifyResult(c.keys.ResultKey, a.Message)
		if err != nil {
			return codes, fmt.Errorf("result for %s does not verify: %w", a.Message.CorrelationID, err)
		}
		codes[r.Code]++
	}
	return codes, nil
}

// Close stops receiving and closes the connection.
func (c *Client) Close() error {
	c.stop()
	<-c.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.sdk.Close(ctx)
}

// Job makes worker w's next request and is told its result code.
type Job func(w int) (spec protocol.RequestSpec, done func(code string), err error)

// ClosedLoop runs l.Concurrency workers, each sending one request and
// waiting for its result before the next, until l is spent. Only results
// with code ok count as requests; others (and timeouts) as errors.
func (c *Client) ClosedLoop(ctx context.Context, l Load, job Job) (Sample, error) {
	s := runWorkers(ctx, l, func(w int) (time.Duration, error) { return c.once(ctx, w, job) })
	if len(s.Latencies) == 0 {
		return s, fmt.Errorf("no request succeeded: %w", s.First)
	}
	return s, nil
}

// once makes, sends and waits for one request of worker w.
func (c *Client) once(ctx context.Context, w int, job Job) (time.Duration, error) {
	spec, done, err := job(w)
	if err != nil {
		return 0, err
	}
	code := ""
	if done != nil {
		defer func() { done(code) }()
	}
	m, err := c.Build(spec)
	if err != nil {
		return 0, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	res, d, err := c.Call(cctx, m)
	if err != nil {
		return 0, err
	}
	code = res.Code
	if res.Code != wire.CodeOK {
		return 0, fmt.Errorf("request %s: %s %s", m.MessageID, res.Code, res.Detail)
	}
	return d, nil
}
