package protocol

import (
	"time"

	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// hasSecret reports whether requests of op carry a sealed secret.
func hasSecret(op wire.Op) bool { return op == wire.OpReset || op == wire.OpChange }

// Actor kinds (§3): who asked, in the cloud.
const (
	ActorSelf   = "self"
	ActorAdmin  = "admin"
	ActorSystem = "system"
)

// Actor is who asked for the change in the cloud. It is recorded in the audit
// log and never used for authorisation.
type Actor struct {
	ID   string
	Kind string
	// IP is empty when the sender gave none.
	IP string
}

// Target names the account a request acts on; see wire.Target. Validate
// checks it against §4.
type Target = wire.Target

// Request is an authenticated, validated request. For reset and change it
// holds the opened passwords; the caller must call Destroy once the
// directory write is done, so they do not linger in memory.
type Request struct {
	// ID is the request id. In a Rejection it is the body's id when valid,
	// else the MessageID, the id the sender correlates results on.
	ID         string
	Op         wire.Op
	Target     Target
	Unlock     bool // also clear a lockout; always true for wire.OpUnlock
	MustChange bool // the user must change the password at next logon
	Actor      Actor
	IssuedAt   time.Time
	ExpiresAt  time.Time
	// SenderKID is the kid of the sender key that signed the request.
	SenderKID string
	// SecretKID and Suite name the agent decryption key that opened the
	// secret; empty for unlock.
	SecretKID string
	Suite     Suite
	// ReplyTo, ReplyToSessionID and SessionID are copied from the message:
	// a result goes to ReplyTo (none when empty) with SessionID set to
	// ReplyToSessionID.
	ReplyTo          string
	ReplyToSessionID string
	SessionID        string
	// New is the new password (reset, change); Old the old one (change).
	New *secret.Secret
	Old *secret.Secret
}

// Destroy wipes the passwords the request holds. It is safe to call twice
// and on a nil request.
func (r *Request) Destroy() {
	if r == nil {
		return
	}
	r.New.Destroy()
	r.Old.Destroy()
}
