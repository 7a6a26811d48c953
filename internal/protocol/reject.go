package protocol

import (
	"fmt"

	"wbagent/internal/wire"
)

// Class says how the agent must treat a rejected message (§6, §8).
type Class int

// The four classes of rejection.
const (
	// Malformed: empty, too large or wrong content type, found before
	// authentication. Dead-letter with reason "malformed", no result.
	Malformed Class = iota + 1
	// Unauthenticated: unknown sender or bad signature. Dead-letter with
	// reason "unauthenticated", no result: its ReplyTo cannot be trusted.
	Unauthenticated
	// Invalid: authenticated but breaks a rule of §3–§4 or does not
	// decrypt. Send an invalid_request result, then dead-letter with reason
	// "invalid_request".
	Invalid
	// Expired: authenticated and well formed, but expiresAt has passed.
	// Send an expired result and complete the message.
	Expired
)

// String returns the class's name as used in dead-letter reasons and codes.
func (c Class) String() string {
	switch c {
	case Malformed:
		return wire.ReasonMalformed
	case Unauthenticated:
		return wire.ReasonUnauthenticated
	case Invalid:
		return wire.CodeInvalidRequest
	case Expired:
		return wire.CodeExpired
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// SendsResult reports whether a result goes back to the sender: only for
// authenticated requests, whose ReplyTo can be trusted.
func (c Class) SendsResult() bool { return c == Invalid || c == Expired }

// DeadLetters reports whether the message is dead-lettered (as opposed to
// completed after the result is sent).
func (c Class) DeadLetters() bool { return c != Expired }

// Rejection is why a message did not yield a request. It is the error Open
// returns. Rule names the failing rule of the spec in words safe for logs,
// audit records and dead-letter descriptions: never a secret, never a
// password, never the raw body.
type Rejection struct {
	Class Class
	Rule  string
	// MessageID is the message's MessageID, as received.
	MessageID string
	// SenderKID is the wb-sender property as received; for Unauthenticated
	// it is only a claim.
	SenderKID string
	// Request holds what was parsed before the failing rule, for the result
	// and the audit record: always ID, ReplyTo, ReplyToSessionID and
	// SenderKID, and wire.Op, Target, Actor and times when they were valid. It
	// is nil for Malformed and Unauthenticated, whose contents are not
	// trusted. It never holds a password.
	Request *Request
}

// Error implements error.
func (r *Rejection) Error() string {
	return fmt.Sprintf("request %q rejected as %s: %s", r.MessageID, r.Class, r.Rule)
}

// Code returns the result code for a rejection that sends a result
// ("invalid_request" or "expired"), else the dead-letter reason.
func (r *Rejection) Code() string { return r.Class.String() }
