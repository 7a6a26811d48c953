package protocol

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"wbagent/internal/wire"

	"github.com/google/uuid"
)

// Result statuses.
const (
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
)

// Result is the outcome the agent sends back to a request's ReplyTo (§6).
type Result struct {
	V      int
	ID     string
	Status string
	Code   string
	// Detail refines Code (e.g. "history" for password_policy); optional.
	Detail string
	// Reason is a sentence safe to show the end user: never a password, a
	// DN or a server's raw message.
	Reason    string
	Retryable bool
	// Agent names the agent instance that answered.
	Agent       string
	CompletedAt time.Time
}

// NewResult fills a result for code: status, the end-user reason for op and
// whether retrying may help. completedAt is kept at millisecond precision,
// the precision of the wire format.
func NewResult(id string, op wire.Op, code, detail, agent string, completedAt time.Time) Result {
	status := StatusFailed
	if code == wire.CodeOK {
		status = StatusSucceeded
	}
	return Result{
		V: 1, ID: id, Status: status, Code: code, Detail: detail,
		Reason: ReasonFor(op, code, detail), Retryable: wire.Retryable(code),
		Agent: agent, CompletedAt: completedAt.UTC().Truncate(time.Millisecond),
	}
}

// resultWire is the JSON form, in the member order of §6.
type resultWire struct {
	V           int    `json:"v"`
	ID          string `json:"id"`
	Status      string `json:"status"`
	Code        string `json:"code"`
	Detail      string `json:"detail,omitempty"`
	Reason      string `json:"reason"`
	Retryable   bool   `json:"retryable"`
	Agent       string `json:"agent"`
	CompletedAt string `json:"completedAt"`
}

// resultTimeLayout writes UTC with milliseconds, as in §6.
const resultTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// check reports the first way r breaks §6.
func (r *Result) check() error {
	switch {
	case r.V != 1:
		return fmt.Errorf("result version is %d, want 1", r.V)
	case r.ID == "":
		return errors.New("result has no request id")
	case !wire.KnownCode(r.Code):
		return fmt.Errorf("result code %q is not a protocol v1 code", r.Code)
	case r.Code == wire.CodeOK && r.Status != StatusSucceeded,
		r.Code != wire.CodeOK && r.Status != StatusFailed:
		return fmt.Errorf("result status %q does not fit code %q", r.Status, r.Code)
	case r.Reason == "":
		return errors.New("result has no reason")
	case r.CompletedAt.IsZero():
		return errors.New("result has no completion time")
	}
	return nil
}

// MarshalJSON implements json.Marshaler with the member order and time
// format of §6.
func (r Result) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(resultWire{
		V: r.V, ID: r.ID, Status: r.Status, Code: r.Code, Detail: r.Detail,
		Reason: r.Reason, Retryable: r.Retryable, Agent: r.Agent,
		CompletedAt: r.CompletedAt.UTC().Format(resultTimeLayout),
	}); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// SignResult builds the result message of §6 for a request whose
// ReplyToSessionID was replyToSessionID: a new MessageID, the request id as
// CorrelationID, the body signed with the agent signing key. The caller
// sends it to the request's ReplyTo.
func SignResult(key *SigningKey, r Result, replyToSessionID string) (Message, error) {
	if key == nil {
		return Message{}, errors.New("sign result: no agent signing key configured")
	}
	if err := r.check(); err != nil {
		return Message{}, fmt.Errorf("sign result: %w", err)
	}
	body, err := r.MarshalJSON()
	if err != nil {
		return Message{}, fmt.Errorf("sign result: encode: %w", err)
	}
	return Message{
		MessageID:     uuid.NewString(),
		CorrelationID: r.ID,
		SessionID:     replyToSessionID,
		ContentType:   ResultContentType,
		Subject:       ResultSubject,
		ApplicationProperties: map[string]any{
			PropSender:    key.KID(),
			PropSignature: key.Sign(body),
		},
		Body: body,
	}, nil
}

// VerifyResult checks a result message against the agent's signing key and
// parses it strictly. A result that fails here must not be believed.
func VerifyResult(pub ed25519.PublicKey, m Message) (*Result, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, errors.New("verify result: the agent signing key is not an Ed25519 public key")
	}
	if !sameMediaType(m.ContentType, ResultContentType) {
		return nil, fmt.Errorf("verify result: content type %q is not %s", truncate(m.ContentType), ResultContentType)
	}
	kid, _ := m.property(PropSender)
	if want := KID(pub); kid != want {
		return nil, fmt.Errorf("verify result: signed by key %q, not the agent signing key %s", truncate(kid), want)
	}
	sig, ok := m.property(PropSignature)
	if !ok {
		return nil, fmt.Errorf("verify result: no %s property", PropSignature)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || !ed25519.Verify(pub, m.Body, raw) {
		return nil, errors.New("verify result: bad signature: the result was altered or not signed by this agent")
	}
	r, err := ParseResult(m.Body)
	if err != nil {
		return nil, fmt.Errorf("verify result: %w", err)
	}
	if m.CorrelationID != "" && m.CorrelationID != r.ID {
		return nil, fmt.Errorf("verify result: correlation id %q differs from the result id %q", truncate(m.CorrelationID), r.ID)
	}
	return r, nil
}

// ParseResult parses a result body strictly (unknown or duplicate members
// are errors) without checking a signature; use VerifyResult when the agent
// signing key is known.
func ParseResult(body []byte) (*Result, error) {
	v, err := parseObject(body)
	if err != nil {
		return nil, fmt.Errorf("parse result: %w", err)
	}
	var r Result
	texts := map[string]*string{"id": &r.ID, "status": &r.Status, "code": &r.Code, "detail": &r.Detail,
		"reason": &r.Reason, "agent": &r.Agent}
	seen := map[string]bool{}
	for i := range v.members {
		m := &v.members[i]
		seen[m.name] = true
		var err error
		switch dst, text := texts[m.name]; {
		case text:
			*dst, err = m.value.text(m.name)
		case m.name == "v":
			r.V, err = m.value.integer("v")
		case m.name == "retryable":
			r.Retryable, err = m.value.boolean("retryable")
		case m.name == "completedAt":
			var s string
			if s, err = m.value.text("completedAt"); err == nil {
				r.CompletedAt, err = parseTime("completedAt", s)
			}
		default:
			err = fmt.Errorf("unknown member %s", quoteName(m.name))
		}
		if err != nil {
			return nil, fmt.Errorf("parse result: %w", err)
		}
	}
	for _, name := range []string{"v", "id", "status", "code", "reason", "retryable", "agent", "completedAt"} {
		if !seen[name] {
			return nil, fmt.Errorf("parse result: member %q is missing", name)
		}
	}
	if err := r.check(); err != nil {
		return nil, fmt.Errorf("parse result: %w", err)
	}
	return &r, nil
}

// Reason returns the end-user sentence for a result code and detail. It
// never includes anything from the directory or the request.
func Reason(code, detail string) string { return ReasonFor("", code, detail) }

// ReasonFor is Reason with the op known, so that a successful unlock does
// not claim a password was changed.
func ReasonFor(op wire.Op, code, detail string) string {
	switch code {
	case wire.CodeOK:
		if op == wire.OpUnlock {
			return "Your account was unlocked."
		}
		return "Your password was changed."
	case wire.CodePasswordPolicy:
		switch detail {
		case wire.DetailTooShort:
			return "The new password is too short. Choose a longer one."
		case wire.DetailComplexity:
			return "The new password is not complex enough. Mix upper- and lower-case letters, digits and symbols, and avoid your name."
		case wire.DetailHistory:
			return "The new password was used recently. Choose a different one."
		case wire.DetailTooYoung:
			return "The password was changed too recently to change it again. Try again later."
		}
		return "The new password does not meet the password policy. Choose a different one."
	case wire.CodeWrongOldPassword:
		return "The current password is not correct."
	case wire.CodeAccountLocked:
		return "Your account is locked. Wait for the lockout to end or ask your help desk to unlock it."
	case wire.CodeAccountDisabled:
		return "Your account is disabled. Contact your help desk."
	case wire.CodeUserNotFound:
		return "Your account was not found in the on-premises directory. Contact your help desk."
	case wire.CodeUserAmbiguous:
		return "Your account could not be identified uniquely in the on-premises directory. Contact your help desk."
	case wire.CodeProtectedAccount:
		return "The password of this account cannot be changed this way. Contact your help desk."
	case wire.CodeOutOfScope:
		return "This account is not managed by password writeback. Contact your help desk."
	case wire.CodeAccessDenied:
		return "The password service is not allowed to change this account. Contact your help desk."
	case wire.CodeExpired:
		return "The request took too long to process. Please try again."
	case wire.CodeInvalidRequest:
		return "The request could not be processed. Please try again or contact your help desk."
	case wire.CodeDirectoryUnavailable:
		return "The on-premises directory is not reachable right now. Please try again later."
	}
	return "Something went wrong while processing your request. Please try again later."
}
