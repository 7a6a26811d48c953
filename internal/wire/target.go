package wire

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// Target names the account a request acts on (§4). Exactly one form is
// set: ObjectGUID, ImmutableID, UserPrincipalName, or SAMAccountName (with
// an optional Domain). Values are kept exactly as the sender wrote them,
// because the target key that binds the ciphertext is built from them.
// protocol parses and checks it; directory resolves it.
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

// Members lists the target's set members as name/value pairs sorted by
// name, the order the target key uses.
func (t Target) Members() [][2]string {
	var m [][2]string
	add := func(name, value string) {
		if value != "" {
			m = append(m, [2]string{name, value})
		}
	}
	add(FormObjectGUID, t.ObjectGUID)
	add(FormImmutableID, t.ImmutableID)
	add(FormUserPrincipalName, t.UserPrincipalName)
	add(FormSAMAccountName, t.SAMAccountName)
	add(FormDomain, t.Domain)
	sort.Slice(m, func(i, j int) bool { return m[i][0] < m[j][0] })
	return m
}

// Key returns the targetKey of §4: the members sorted by name, each written
// name=value, joined by NUL. It binds a sealed secret to this target and
// names the session on session queues.
func (t Target) Key() string {
	var b strings.Builder
	for i, m := range t.Members() {
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

// String describes the target for logs and errors: its form and value.
func (t Target) String() string {
	switch {
	case t.ObjectGUID != "":
		return FormObjectGUID + "=" + t.ObjectGUID
	case t.ImmutableID != "":
		return FormImmutableID + "=" + t.ImmutableID
	case t.UserPrincipalName != "":
		return FormUserPrincipalName + "=" + t.UserPrincipalName
	case t.Domain != "":
		return FormSAMAccountName + "=" + t.SAMAccountName + " " + FormDomain + "=" + t.Domain
	default:
		return FormSAMAccountName + "=" + t.SAMAccountName
	}
}
