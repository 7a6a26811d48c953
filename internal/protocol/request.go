package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
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

// Target names the account a request acts on. Exactly one form is set:
// ObjectGUID, ImmutableID, UserPrincipalName, or SAMAccountName (with an
// optional Domain). Values are kept exactly as the sender wrote them, because
// the target key that binds the ciphertext is built from them.
type Target struct {
	// ObjectGUID is the GUID in the text form Windows prints (§4).
	ObjectGUID string
	// ImmutableID is base64 of 16 bytes: mS-DS-ConsistencyGuid, else objectGUID.
	ImmutableID       string
	UserPrincipalName string
	SAMAccountName    string
	// Domain accompanies SAMAccountName only; NetBIOS or DNS name, or empty.
	Domain string
}

// members lists the target's set members as name/value pairs sorted by name,
// the order the target key uses.
func (t Target) members() [][2]string {
	var m [][2]string
	add := func(name, value string) {
		if value != "" {
			m = append(m, [2]string{name, value})
		}
	}
	add(wire.FormObjectGUID, t.ObjectGUID)
	add(wire.FormImmutableID, t.ImmutableID)
	add(wire.FormUserPrincipalName, t.UserPrincipalName)
	add(wire.FormSAMAccountName, t.SAMAccountName)
	add(wire.FormDomain, t.Domain)
	sort.Slice(m, func(i, j int) bool { return m[i][0] < m[j][0] })
	return m
}

// Key returns the targetKey of §4: the members sorted by name, each written
// name=value, joined by NUL. It binds a sealed secret to this target and
// names the session on session queues.
func (t Target) Key() string {
	var b strings.Builder
	for i, m := range t.members() {
		if i > 0 {
			b.WriteByte(0)
		}
		b.WriteString(m[0])
		b.WriteByte('=')
		b.WriteString(m[1])
	}
	return b.String()
}

// SessionID returns the Service Bus session id for this target on session
// queues: "u:" and the first 32 lowercase hex characters of SHA-256(Key()).
// All requests for one target then run in order, one at a time.
func (t Target) SessionID() string {
	sum := sha256.Sum256([]byte(t.Key()))
	return "u:" + hex.EncodeToString(sum[:16])
}

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
