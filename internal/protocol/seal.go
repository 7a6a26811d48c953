package protocol

import (
	"crypto/hpke"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// RequestSpec describes a request for BuildRequest: the sender's view of §3.
type RequestSpec struct {
	// ID is the request id; empty means a new random UUID.
	ID         string
	Op         wire.Op
	Target     Target
	Unlock     bool
	MustChange bool
	Actor      Actor
	IssuedAt   time.Time
	ExpiresAt  time.Time
	// New is required for reset and change, Old for change; both must be
	// nil for unlock. BuildRequest does not destroy them.
	New *secret.Secret
	Old *secret.Secret
	// ReplyTo names the queue for the result; empty asks for none.
	ReplyTo          string
	ReplyToSessionID string
	// Session sets the SessionID of §1, for queues that require sessions.
	Session bool
}

// SealedSecret is the secret member of a request body (§3).
type SealedSecret struct {
	KID   string `json:"kid"`
	Suite Suite  `json:"suite"`
	// Enc is base64url of the HPKE encapsulated key and ciphertext.
	Enc string `json:"enc"`
}

// Seal encrypts the passwords to the agent's key, bound to one request id,
// op and target. oldPw is nil except for change. The plaintext is wiped.
func Seal(agent *AgentPublicKey, id string, op wire.Op, t Target, newPw, oldPw *secret.Secret) (SealedSecret, error) {
	if agent == nil {
		return SealedSecret{}, errors.New("seal: no agent public key")
	}
	if err := CheckPassword("new", newPw.Bytes()); err != nil {
		return SealedSecret{}, fmt.Errorf("seal: %w", err)
	}
	if op == wire.OpChange {
		if err := CheckPassword("old", oldPw.Bytes()); err != nil {
			return SealedSecret{}, fmt.Errorf("seal: %w", err)
		}
	} else if oldPw != nil {
		return SealedSecret{}, fmt.Errorf("seal: an old password is only sent with change, not %s", op)
	}
	// Worst case every byte becomes \u00XX: size the buffer once so no
	// copy of a password is left behind by regrowth.
	plain := make([]byte, 0, 6*(newPw.Len()+oldPw.Len())+32)
	defer func() { clear(plain[:cap(plain)]) }()
	plain = append(plain, '{')
	if op == wire.OpChange {
		plain = append(plain, `"old":`...)
		plain = appendJSONString(plain, oldPw.Bytes())
		plain = append(plain, ',')
	}
	plain = append(plain, `"new":`...)
	plain = appendJSONString(plain, newPw.Bytes())
	plain = append(plain, '}')
	enc, err := hpke.Seal(agent.pub, suiteKDF, suiteAEAD, sealInfo(id, op, t), plain)
	if err != nil {
		return SealedSecret{}, fmt.Errorf("seal: %w", err)
	}
	return SealedSecret{KID: agent.kid, Suite: agent.suite, Enc: base64.RawURLEncoding.EncodeToString(enc)}, nil
}

// appendJSONString writes s as a JSON string. s is valid UTF-8
// (CheckPassword saw to it), so only quotes, backslashes and control
// characters need escaping.
func appendJSONString(dst, s []byte) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// requestWire is the body of §3 in the member order of the spec's example.
type requestWire struct {
	V         int           `json:"v"`
	ID        string        `json:"id"`
	Op        wire.Op       `json:"op"`
	Target    targetWire    `json:"target"`
	Options   *optionsWire  `json:"options,omitempty"`
	Actor     actorWire     `json:"actor"`
	IssuedAt  string        `json:"issuedAt"`
	ExpiresAt string        `json:"expiresAt"`
	Secret    *SealedSecret `json:"secret,omitempty"`
}

type targetWire Target

// MarshalJSON writes only the members the target sets, sorted by name.
func (t targetWire) MarshalJSON() ([]byte, error) {
	out := []byte{'{'}
	for i, m := range Target(t).Members() {
		if i > 0 {
			out = append(out, ',')
		}
		name, _ := json.Marshal(m[0])
		value, _ := json.Marshal(m[1])
		out = append(append(append(out, name...), ':'), value...)
	}
	return append(out, '}'), nil
}

type optionsWire struct {
	Unlock     bool `json:"unlock"`
	MustChange bool `json:"mustChange"`
}

type actorWire struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	IP   string `json:"ip,omitempty"`
}

// BuildRequest makes a complete request message (§1, §3, §5): the body with
// the sealed secret, signed by signer, with MessageID, ContentType, Subject,
// TimeToLive and, for session queues, SessionID set.
func BuildRequest(signer *SigningKey, agent *AgentPublicKey, spec RequestSpec) (Message, error) {
	if signer == nil {
		return Message{}, errors.New("build request: no sender signing key")
	}
	if spec.ID == "" {
		spec.ID = uuid.NewString()
	}
	switch {
	case !isCanonicalUUID(spec.ID):
		return Message{}, errors.New("build request: id is not a UUID in lowercase canonical form")
	case !spec.Op.Valid():
		return Message{}, fmt.Errorf("build request: op %q is not reset, change or unlock", truncate(string(spec.Op)))
	case !spec.ExpiresAt.After(spec.IssuedAt):
		return Message{}, errors.New("build request: expiresAt must be after issuedAt")
	}
	if err := ValidateTarget(spec.Target); err != nil {
		return Message{}, fmt.Errorf("build request: %w", err)
	}
	if err := spec.Actor.validate(); err != nil {
		return Message{}, fmt.Errorf("build request: %w", err)
	}
	w := requestWire{
		V: 1, ID: spec.ID, Op: spec.Op, Target: targetWire(spec.Target),
		Actor:     actorWire(spec.Actor),
		IssuedAt:  spec.IssuedAt.UTC().Format(time.RFC3339Nano),
		ExpiresAt: spec.ExpiresAt.UTC().Format(time.RFC3339Nano),
	}
	if spec.Op != wire.OpUnlock && (spec.Unlock || spec.MustChange) {
		w.Options = &optionsWire{Unlock: spec.Unlock, MustChange: spec.MustChange}
	}
	if hasSecret(spec.Op) {
		s, err := Seal(agent, spec.ID, spec.Op, spec.Target, spec.New, spec.Old)
		if err != nil {
			return Message{}, fmt.Errorf("build request: %w", err)
		}
		w.Secret = &s
	} else if spec.New != nil || spec.Old != nil {
		return Message{}, errors.New("build request: unlock carries no password")
	}
	body, err := json.Marshal(w)
	if err != nil {
		return Message{}, fmt.Errorf("build request: encode: %w", err)
	}
	if len(body) > MaxBodySize {
		return Message{}, fmt.Errorf("build request: body is %d bytes, more than the %d allowed", len(body), MaxBodySize)
	}
	m := Message{
		MessageID:        spec.ID,
		ContentType:      RequestContentType,
		Subject:          string(spec.Op),
		ReplyTo:          spec.ReplyTo,
		ReplyToSessionID: spec.ReplyToSessionID,
		TimeToLive:       spec.ExpiresAt.Sub(spec.IssuedAt),
		ApplicationProperties: map[string]any{
			PropSender:    signer.KID(),
			PropSignature: signer.Sign(body),
		},
		Body: body,
	}
	if spec.Session {
		m.SessionID = spec.Target.SessionID()
	}
	return m, nil
}
