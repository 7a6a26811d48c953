package writeback

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/ledger"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// Options configure a Handler. Opener, Directory, Ledger, Audit, Seal and
// SigningKey are required.
type Options struct {
	// Agent is the agent's name, put in results and audit records.
	Agent string
	// RetryBudget bounds how long one delivery retries transient failures
	// (directory, ledger, session state, audit) before its message is
	// abandoned for redelivery (requests.retryBudget). Required: the config
	// owns its default.
	RetryBudget time.Duration
	// BackoffInitial and BackoffMax shape the exponential backoff between
	// retries; each wait is jittered to between half and all of its step.
	// Required, with BackoffMax no shorter than BackoffInitial.
	BackoffInitial time.Duration
	BackoffMax     time.Duration

	Opener     Opener
	Directory  Directory
	Ledger     Ledger
	Audit      Auditor
	SigningKey *protocol.SigningKey

	// Seal authenticates the session state (protocol v1 §7 as sealed by
	// wbagent): records it cannot verify are treated as absent. Make it
	// with NewSessionSeal from the decryption keys.
	Seal *ledger.SessionSeal
	// Queue is the request queue's name, bound into every session-state
	// MAC so that a record does not verify on another queue.
	Queue string
	// OnStateRefused, when set, is told how many session-state records
	// were refused (for the metrics).
	OnStateRefused func(n int)
	// Rejections, when set, takes the audit records of messages nobody
	// trusted (dead-lettered malformed or unauthenticated) instead of
	// Audit, so that a flood of them is aggregated (*audit.Aggregator).
	Rejections audit.Recorder

	// Clock defaults to SystemClock; Jitter returns a number in [0, 1) and
	// defaults to math/rand/v2.
	Clock  Clock
	Jitter func() float64
	// PostWriteTimeout bounds the bookkeeping after a directory write
	// (session state, audit) when the delivery's context has ended: the
	// write happened, so its record must still be attempted. Required.
	PostWriteTimeout time.Duration
	Logger           *zap.Logger
}

// Handler runs protocol v1 for one delivery at a time (and many at once):
// authenticate, validate, replay check, open, apply, result, audit. It is
// safe for concurrent use.
type Handler struct {
	o   Options
	log *zap.Logger

	mu       sync.Mutex
	auditErr error
	// stateErr is the last ledger write's failure; nil after a success.
	stateErr error
	// auditing holds the ids whose result this agent is recording and
	// auditing right now: a duplicate delivery that finds such a result
	// not yet audited waits for that line instead of writing its own.
	auditing map[string]chan struct{}
}

// New checks opts and makes a Handler.
func New(opts Options) (*Handler, error) {
	switch {
	case opts.Opener == nil:
		return nil, errors.New("writeback: no request opener (decryption keys and trusted senders)")
	case opts.Directory == nil:
		return nil, errors.New("writeback: no directory")
	case opts.Ledger == nil:
		return nil, errors.New("writeback: no ledger")
	case opts.Audit == nil:
		return nil, errors.New("writeback: no audit trail")
	case opts.SigningKey == nil:
		return nil, errors.New("writeback: no agent signing key (agent.signingKey)")
	case opts.RetryBudget <= 0:
		// The config owns this default; a zero here is a wiring mistake.
		return nil, fmt.Errorf("writeback: retry budget %s: give a positive duration (requests.retryBudget)", opts.RetryBudget)
	case opts.Seal == nil:
		return nil, errors.New("writeback: no session state seal (derive it from agent.decryptionKeys with NewSessionSeal)")
	case opts.BackoffInitial <= 0 || opts.BackoffMax < opts.BackoffInitial:
		return nil, fmt.Errorf("writeback: backoff %s to %s: give a positive first step and a cap no shorter", opts.BackoffInitial, opts.BackoffMax)
	case opts.PostWriteTimeout <= 0:
		return nil, fmt.Errorf("writeback: post-write timeout %s: give a positive duration", opts.PostWriteTimeout)
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	return &Handler{o: opts, auditing: map[string]chan struct{}{}, log: opts.Logger.With(zap.String(logging.FieldComponent, "writeback"))}, nil
}

// Ready reports whether the audit trail takes records: nil unless an
// audit write failed and no probe write (Intake) has succeeded since.
// While it fails no message is completed.
func (h *Handler) Ready() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.auditErr != nil {
		return fmt.Errorf("audit trail failing, messages are left for redelivery: %w", h.auditErr)
	}
	return nil
}

// beginAuditing marks id as being recorded and audited by this agent. When
// another delivery of id already is, it returns false and a channel that
// closes once that delivery's audit line is written (or has failed).
func (h *Handler) beginAuditing(id string) (<-chan struct{}, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch, busy := h.auditing[id]; busy {
		return ch, false
	}
	h.auditing[id] = make(chan struct{})
	return nil, true
}

func (h *Handler) endAuditing(id string) {
	h.mu.Lock()
	if ch, ok := h.auditing[id]; ok {
		close(ch)
		delete(h.auditing, id)
	}
	h.mu.Unlock()
}

func (h *Handler) setAuditErr(err error) {
	h.mu.Lock()
	h.auditErr = err
	h.mu.Unlock()
}

// backoff returns the wait before retry n (1-based): exponential from
// BackoffInitial, capped at BackoffMax, jittered to [step/2, step) so that
// agents retrying the same failed DC spread out.
func (h *Handler) backoff(n int) time.Duration {
	step := h.o.BackoffInitial
	for i := 1; i < n && step < h.o.BackoffMax; i++ {
		step *= 2
	}
	step = min(step, h.o.BackoffMax)
	return step/2 + time.Duration(h.o.Jitter()*float64(step/2))
}

// Handle decides and records what happens to one delivery, and returns the
// outcome the transport must carry out. It never panics on bad input and
// returns promptly (with Abandon) once ctx ends, except that bookkeeping
// after a directory write is still attempted within PostWriteTimeout.
func (h *Handler) Handle(ctx context.Context, d Delivery) Outcome {
	t := newTask(h, d)
	req, err := h.o.Opener.Open(d.Message, t.start)
	var out Outcome
	var rej *protocol.Rejection
	switch {
	case err == nil:
		t.req = req
		out = t.run(ctx, true)
		req.Destroy()
	case errors.As(err, &rej):
		out = t.rejected(ctx, rej)
	default:
		out = t.abandon(wire.CodeInternalError, fmt.Errorf("open request: %w", err))
	}
	return t.finish(ctx, out)
}
