package amqp

// Error conditions (part 2 section 2.8.15-2.8.18).
const (
	ErrInternal            Symbol = "amqp:internal-error"
	ErrNotFound            Symbol = "amqp:not-found"
	ErrUnauthorizedAccess  Symbol = "amqp:unauthorized-access"
	ErrDecodeError         Symbol = "amqp:decode-error"
	ErrResourceLimit       Symbol = "amqp:resource-limit-exceeded"
	ErrNotAllowed          Symbol = "amqp:not-allowed"
	ErrInvalidField        Symbol = "amqp:invalid-field"
	ErrNotImplemented      Symbol = "amqp:not-implemented"
	ErrIllegalState        Symbol = "amqp:illegal-state"
	ErrConnectionForced    Symbol = "amqp:connection:forced"
	ErrFramingError        Symbol = "amqp:connection:framing-error"
	ErrWindowViolation     Symbol = "amqp:session:window-violation"
	ErrHandleInUse         Symbol = "amqp:session:handle-in-use"
	ErrUnattachedHandle    Symbol = "amqp:session:unattached-handle"
	ErrDetachForced        Symbol = "amqp:link:detach-forced"
	ErrTransferLimit       Symbol = "amqp:link:transfer-limit-exceeded"
	ErrMessageSizeExceeded Symbol = "amqp:link:message-size-exceeded"
)
