package testbed

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/bus"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// SenderOptions configure a Sender.
type SenderOptions struct {
	// Queue is the agent's request queue; Sessions says whether it
	// requires sessions (requests then carry the SessionID of §1).
	Queue    string
	Sessions bool
	// ReplyQueue is a plain queue the results come back on.
	ReplyQueue string
	// TTL is expiresAt - issuedAt of requests built without times;
	// default 5 minutes.
	TTL time.Duration
	// Secrets tracks every password sent; nil tracks nothing.
	Secrets *Secrets
}

// Reply is one result received for a request.
type Reply struct {
	Result  *protocol.Result
	Message protocol.Message
	At      time.Time
}

// Sender is the cloud side of the protocol for tests: it seals, signs and
// sends requests through the azservicebus SDK and collects the signed
// results from the reply queue, checking each signature with the agent's
// result key.
type Sender struct {
	o      SenderOptions
	keys   *Keys
	client *azservicebus.Client
	sender *azservicebus.Sender
	recv   *azservicebus.Receiver
	stop   context.CancelFunc
	done   chan struct{}
	// settling counts completes of received results still running.
	settling sync.WaitGroup
	// complete settles a received result: the reply receiver's
	// CompleteMessage, or a test's stand-in.
	complete func(context.Context, *azservicebus.ReceivedMessage) error

	mu         sync.Mutex
	resultKeys []ed25519.PublicKey
	replies    map[string][]Reply
	bad        []error
	changed    chan struct{}
	dead       []DeadLetter
}

// NewClient returns an SDK client for the bus with retries short enough
// for tests.
func NewClient(b *Bus) (*azservicebus.Client, error) {
	return azservicebus.NewClientFromConnectionString(b.ConnectionString().Reveal(), &azservicebus.ClientOptions{
		RetryOptions: azservicebus.RetryOptions{MaxRetries: 5, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: time.Second},
	})
}

// NewSender connects to the bus and starts collecting results.
func NewSender(b *Bus, keys *Keys, o SenderOptions) (*Sender, error) {
	return newSender(b, keys, o, nil)
}

// newSender is NewSender with the way received results are completed;
// nil completes them on the reply receiver.
func newSender(b *Bus, keys *Keys, o SenderOptions, complete func(context.Context, *azservicebus.ReceivedMessage) error) (*Sender, error) {
	if o.Queue == "" || o.ReplyQueue == "" {
		return nil, errors.New("new sender: Queue and ReplyQueue are required")
	}
	if o.TTL == 0 {
		o.TTL = 5 * time.Minute
	}
	client, err := NewClient(b)
	if err != nil {
		return nil, fmt.Errorf("new sender: %w", err)
	}
	s := &Sender{o: o, keys: keys, client: client, resultKeys: []ed25519.PublicKey{keys.ResultKey},
		replies: map[string][]Reply{}, changed: make(chan struct{}), done: make(chan struct{})}
	if s.sender, err = client.NewSender(o.Queue, nil); err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("new sender for %s: %w", o.Queue, err)
	}
	if s.recv, err = client.NewReceiverForQueue(o.ReplyQueue, nil); err != nil {
		_ = client.Close(context.Background())
		return nil, fmt.Errorf("new receiver for %s: %w", o.ReplyQueue, err)
	}
	s.complete = complete
	if s.complete == nil {
		s.complete = func(ctx context.Context, m *azservicebus.ReceivedMessage) error {
			return s.recv.CompleteMessage(ctx, m, nil)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	go s.collect(ctx)
	return s, nil
}

// settleTimeout bounds the complete of one received result.
const settleTimeout = 10 * time.Second

// collect receives results until ctx ends.
func (s *Sender) collect(ctx context.Context) {
	defer close(s.done)
	for ctx.Err() == nil {
		msgs, err := s.recv.ReceiveMessages(ctx, 64, nil)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.mu.Lock()
			s.bad = append(s.bad, fmt.Errorf("receive results: %w", err))
			s.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for _, rm := range msgs {
			m := FromReceived(rm)
			// The result counts once it is received. Completing it is
			// housekeeping that must hold up neither recording it nor
			// the next receive: after a dropped connection the SDK's
			// settle retries with its own default policy (seconds apart,
			// with no deadline of its own), and a receive loop waiting on
			// it stops collecting results for as long. A complete that
			// fails brings the same result again after its lock expires.
			s.settling.Add(1)
			go func() {
				defer s.settling.Done()
				cctx, cancel := context.WithTimeout(ctx, settleTimeout)
				defer cancel()
				_ = s.complete(cctx, rm)
			}()
			s.mu.Lock()
			var res *protocol.Result
			var verr error
			for _, k := range s.resultKeys {
				if res, verr = protocol.VerifyResult(k, m); verr == nil {
					break
				}
			}
			if verr != nil {
				s.bad = append(s.bad, fmt.Errorf("result message %s (correlation %s) does not verify: %w", m.MessageID, m.CorrelationID, verr))
			} else {
				s.replies[m.CorrelationID] = append(s.replies[m.CorrelationID], Reply{Result: res, Message: m, At: time.Now()})
			}
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
		}
	}
}

// AcceptResultKey makes results signed with pub count as verified too
// (an agent configured with other keys than the sender's Keys).
func (s *Sender) AcceptResultKey(pub ed25519.PublicKey) {
	s.mu.Lock()
	s.resultKeys = append(s.resultKeys, pub)
	s.mu.Unlock()
}

// Spec returns a request for op on target with this sender's defaults:
// reply queue, session id, actor and times; the caller adds passwords and
// options.
func (s *Sender) Spec(op wire.Op, target protocol.Target) protocol.RequestSpec {
	now := time.Now()
	return protocol.RequestSpec{
		Op: op, Target: target, ReplyTo: s.o.ReplyQueue, Session: s.o.Sessions,
		Actor:    protocol.Actor{ID: "helpdesk@contoso.example", Kind: protocol.ActorAdmin, IP: "203.0.113.7"},
		IssuedAt: now, ExpiresAt: now.Add(s.o.TTL),
	}
}

// Send builds the request of spec and sends it. The passwords in spec are
// tracked (not destroyed).
func (s *Sender) Send(ctx context.Context, spec protocol.RequestSpec) (protocol.Message, error) {
	if s.o.Secrets != nil {
		s.o.Secrets.Track(spec.New)
		s.o.Secrets.Track(spec.Old)
	}
	m, err := protocol.BuildRequest(s.keys.Signer, s.keys.Agent, spec)
	if err != nil {
		return m, err
	}
	return m, s.SendMessage(ctx, m)
}

// SendMessage sends m as it is.
func (s *Sender) SendMessage(ctx context.Context, m protocol.Message) error {
	if err := s.sender.SendMessage(ctx, ToSDK(m), nil); err != nil {
		return fmt.Errorf("send %s to %s: %w", m.MessageID, s.o.Queue, err)
	}
	return nil
}

// Replies returns the results received so far for request id.
func (s *Sender) Replies(id string) []Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Reply(nil), s.replies[id]...)
}

// AllReplies returns every result received so far, by request id.
func (s *Sender) AllReplies() map[string][]Reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string][]Reply, len(s.replies))
	for k, v := range s.replies {
		out[k] = append([]Reply(nil), v...)
	}
	return out
}

// Bad returns results that did not verify and receive errors.
func (s *Sender) Bad() []error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.bad...)
}

// Wait waits for the first result of request id.
func (s *Sender) Wait(ctx context.Context, id string) (*protocol.Result, error) {
	if err := s.WaitAll(ctx, []string{id}); err != nil {
		return nil, err
	}
	return s.Replies(id)[0].Result, nil
}

// WaitAll waits until every request in ids has at least one result.
func (s *Sender) WaitAll(ctx context.Context, ids []string) error {
	for {
		s.mu.Lock()
		var missing []string
		for _, id := range ids {
			if len(s.replies[id]) == 0 {
				missing = append(missing, id)
			}
		}
		ch := s.changed
		s.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			if len(missing) > 5 {
				missing = append(missing[:5], fmt.Sprintf("and %d more", len(missing)-5))
			}
			return fmt.Errorf("no result for %s: %w", strings.Join(missing, ", "), ctx.Err())
		}
	}
}

// DeadLetter is a message read back from the request queue's dead-letter
// queue.
type DeadLetter struct {
	MessageID   string
	Reason      string
	Description string
	Body        []byte
}

// DeadLetters reads (and removes) what has reached the request queue's
// dead-letter queue since the last call, waiting up to wait for the first
// one, and returns every dead letter read so far.
func (s *Sender) DeadLetters(ctx context.Context, wait time.Duration) ([]DeadLetter, error) {
	r, err := s.client.NewReceiverForQueue(s.o.Queue, &azservicebus.ReceiverOptions{SubQueue: azservicebus.SubQueueDeadLetter})
	if err != nil {
		return nil, fmt.Errorf("open the dead-letter queue of %s: %w", s.o.Queue, err)
	}
	defer func() { _ = r.Close(context.WithoutCancel(ctx)) }()
	for {
		rctx, cancel := context.WithTimeout(ctx, wait)
		msgs, err := r.ReceiveMessages(rctx, 64, nil)
		cancel()
		if err != nil && ctx.Err() != nil {
			return nil, err
		}
		for _, m := range msgs {
			dl := DeadLetter{MessageID: m.MessageID, Body: m.Body}
			if m.DeadLetterReason != nil {
				dl.Reason = *m.DeadLetterReason
			}
			if m.DeadLetterErrorDescription != nil {
				dl.Description = *m.DeadLetterErrorDescription
			}
			if err := r.CompleteMessage(ctx, m, nil); err != nil {
				return nil, fmt.Errorf("complete dead letter %s: %w", m.MessageID, err)
			}
			s.mu.Lock()
			s.dead = append(s.dead, dl)
			s.mu.Unlock()
		}
		if len(msgs) == 0 {
			break
		}
		wait = 300 * time.Millisecond
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]DeadLetter(nil), s.dead...), nil
}

// Client is the sender's SDK client, for anything else a test needs
// (session state, peeking).
func (s *Sender) Client() *azservicebus.Client { return s.client }

// Close stops collecting and closes the connection.
func (s *Sender) Close() error {
	s.stop()
	<-s.done
	s.settling.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.client.Close(ctx)
}

// ToSDK converts a protocol message for the SDK, as the agent does.
func ToSDK(m protocol.Message) *azservicebus.Message { return bus.ToServiceBus(&m) }

// FromReceived converts a received message to the protocol's view, as the
// agent does.
func FromReceived(rm *azservicebus.ReceivedMessage) protocol.Message { return bus.FromServiceBus(rm) }

// CLIResult is what one `wbagent send` run printed and returned.
type CLIResult struct {
	// Result is the result it printed; nil when none came.
	Result         *protocol.Result
	Stdout, Stderr string
	ExitCode       int
}

// SendCLI runs `bin send` with the bus's connection string (through the
// environment, never a flag), the key files of keys, and args (queue,
// reply queue, op, target, options); stdin carries the passwords, one per
// line.
func SendCLI(ctx context.Context, bin string, b *Bus, keys *Keys, stdin string, args ...string) (CLIResult, error) {
	full := append([]string{"send", "--connection-string-env", EnvConnection,
		"--sender-key", keys.SenderKey, "--agent-key", keys.AgentHPKEPub, "--agent-signing-key", keys.AgentSignPub}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	cmd.Env = append(os.Environ(), EnvConnection+"="+b.ConnectionString().Reveal())
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := CLIResult{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.ExitCode = ee.ExitCode()
	case err != nil:
		return r, fmt.Errorf("run wbagent send: %w", err)
	}
	if body := strings.TrimSpace(r.Stdout); body != "" {
		res, err := protocol.ParseResult([]byte(body))
		if err != nil {
			return r, fmt.Errorf("wbagent send printed %q, not a result: %w", body, err)
		}
		r.Result = res
	}
	return r, nil
}
