package writeback

import (
	"context"
	"time"

	"wbagent/internal/protocol"
)

// Settle is how the transport must settle a message once its reply (if any)
// is sent.
type Settle int

// The three settlements protocol v1 §6 and §8 use.
const (
	// Complete removes the message: the request has its final answer.
	Complete Settle = iota + 1
	// Abandon returns the message to the queue for redelivery: the request
	// may still succeed later (transient failure, stop, audit failure).
	Abandon
	// DeadLetter moves the message to the dead-letter queue with
	// Outcome.DeadLetterReason and Outcome.DeadLetterDescription.
	DeadLetter
)

// String returns the name used in logs and metrics.
func (s Settle) String() string {
	switch s {
	case Complete:
		return "complete"
	case Abandon:
		return "abandon"
	case DeadLetter:
		return "deadletter"
	}
	return "unknown"
}

// Delivery is one received message with what the transport knows about it.
type Delivery struct {
	Message protocol.Message
	// DeliveryCount is 1 on the first delivery.
	DeliveryCount int
	// EnqueuedAt is when the broker accepted the message; zero when unknown.
	EnqueuedAt time.Time
	// Session is the session's state store on session queues, nil on plain
	// queues. Only the holder of the session lock may use it.
	Session SessionState
}

// SessionState is the Service Bus session state of the session a delivery
// came from (protocol v1 §7): it carries the applying/done records to
// whichever agent holds the session next.
type SessionState interface {
	// Get returns the current state; nil when none was ever set.
	Get(ctx context.Context) ([]byte, error)
	// Set replaces the state.
	Set(ctx context.Context, state []byte) error
}

// Outcome is everything the transport must do with one delivery, decided
// once by Handle: send Reply (when not nil) to ReplyTo, then settle as
// Settle says. The transport decides nothing itself, except that a reply it
// could not send turns any settlement into Abandon: a message is completed
// only after its result is sent.
type Outcome struct {
	// Reply is the signed result message; nil sends nothing.
	Reply *protocol.Message
	// ReplyTo is the queue Reply goes to.
	ReplyTo string
	Settle  Settle
	// DeadLetterReason and DeadLetterDescription go with Settle ==
	// DeadLetter (§8): a reason code and the failing rule, never a secret.
	DeadLetterReason      string
	DeadLetterDescription string

	// The rest describes the outcome for logs and metrics.

	// RequestID is the request id, or the MessageID when no id was trusted.
	RequestID string
	// Op is the request's op; empty when it was never known.
	Op string
	// Code is the result code sent (or that would have been sent), the
	// dead-letter reason for messages that get no result, or the code of
	// the failure that caused an abandon (directory_unavailable,
	// internal_error).
	Code   string
	Detail string
	// Event is the audit event recorded for this outcome.
	Event string
	// Attempts counts directory writes tried for this delivery.
	Attempts int
	// QueueWait is the time from enqueue to the start of handling;
	// DirectoryTime the time spent in directory calls and retry waits;
	// Duration the whole of Handle.
	QueueWait     time.Duration
	DirectoryTime time.Duration
	Duration      time.Duration
	// AuditFailed says the audit record could not be written (the outcome
	// was turned into an abandon without reply).
	AuditFailed bool
	// Err explains an abandon for the log; it never holds a secret.
	Err error
}
