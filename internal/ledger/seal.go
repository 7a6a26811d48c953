package ledger

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"wbagent/internal/wire"
)

// SealedStateHeader opens every authenticated session state (version 2 of
// the encoding). Version 1 (SessionStateHeader, or bare records) carries no
// MAC: whoever holds Listen rights on the queue can write it, so a sealed
// reader treats it as absent.
const SealedStateHeader = "wbagent-session-state 2"

// SessionMACLabel is the HKDF info a session-state MAC key is derived with
// from a decryption private key (protocol.DecryptionKey.DeriveSecret).
const SessionMACLabel = "wbagent-session-state 2 mac"

// SessionKey is one session-state MAC key: 32 bytes derived from the
// decryption key kid.
type SessionKey struct {
	KID string
	Key []byte
}

// SessionBinding is what a session state belongs to. A record's MAC covers
// both, so a record copied from another session or another queue (even one
// this agent serves) does not verify there.
type SessionBinding struct {
	// Queue is the request queue's name; it is compared without regard to
	// case, as Service Bus names are.
	Queue string
	// SessionID is the session the state is stored on.
	SessionID string
}

// Refused is a session-state record (or the whole state) that did not
// authenticate and was treated as absent.
type Refused struct {
	// ID is the request id the record names, when it could be read.
	ID string
	// State is the record's word (applying, done), when it could be read.
	State string
	// Reason says why, for the audit trail and the log. It quotes at most
	// a clipped part of the input.
	Reason string
}

// String returns a short description for logs and audit details.
func (r Refused) String() string {
	switch {
	case r.ID != "" && r.State != "":
		return r.State + " " + r.ID + ": " + r.Reason
	case r.ID != "":
		return r.ID + ": " + r.Reason
	}
	return r.Reason
}

// SessionSeal writes and checks authenticated session state: every record
// carries an HMAC-SHA-256 under each key the agent holds, bound to the
// queue, the session id and the request id. Keys are those of
// agent.decryptionKeys, so during a rotation an agent that holds only the
// old key still verifies what an agent holding both wrote. It is safe for
// concurrent use.
type SessionSeal struct {
	keys  []SessionKey
	byKID map[string][]byte
}

// NewSessionSeal makes a seal with keys; the order is kept in what it
// writes. At least one key is required.
func NewSessionSeal(keys []SessionKey) (*SessionSeal, error) {
	if len(keys) == 0 {
		return nil, errors.New("session state seal: no key (agent.decryptionKeys is empty)")
	}
	s := &SessionSeal{byKID: map[string][]byte{}}
	for _, k := range keys {
		if !wire.IsKID(k.KID) {
			return nil, fmt.Errorf("session state seal: key id %q is not 16 lowercase hex digits", k.KID)
		}
		if len(k.Key) < 32 {
			return nil, fmt.Errorf("session state seal: key %s has %d bytes, fewer than 32", k.KID, len(k.Key))
		}
		if _, dup := s.byKID[k.KID]; dup {
			return nil, fmt.Errorf("session state seal: key %s is listed twice", k.KID)
		}
		key := append([]byte(nil), k.Key...)
		s.keys = append(s.keys, SessionKey{KID: k.KID, Key: key})
		s.byKID[k.KID] = key
	}
	return s, nil
}

// mac is HMAC-SHA-256 under key of: the header, then the lowercased queue
// name, the session id, the request id and the record text, each preceded
// by its length as 4 big-endian bytes (so no field can run into another).
func mac(key []byte, b SessionBinding, id, text string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(SealedStateHeader))
	var n [4]byte
	for _, f := range []string{strings.ToLower(b.Queue), b.SessionID, id, text} {
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// tags returns the line prefix of one record: `<kid>.<mac>` for every key,
// comma-separated, the MAC in unpadded base64url.
func (s *SessionSeal) tags(b SessionBinding, id, text string) string {
	var sb strings.Builder
	for i, k := range s.keys {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(k.KID)
		sb.WriteByte('.')
		sb.WriteString(base64.RawURLEncoding.EncodeToString(mac(k.Key, b, id, text)))
	}
	return sb.String()
}

// Encode returns st in the authenticated form: SealedStateHeader, then one
// line per record, oldest first, `<tags> <record text>`. Like
// SessionState.Encode it drops the oldest records (from st too) to stay
// within MaxSessionStateBytes, and fails only if the newest alone does not
// fit.
func (s *SessionSeal) Encode(st *SessionState, b SessionBinding) ([]byte, error) {
	return st.encode(SealedStateHeader, func(r Record) string {
		text := r.String()
		return s.tags(b, r.ID, text) + " " + text
	})
}

// Decode reads a session state and keeps only the records that
// authenticate for b under a key this seal holds. Everything else is
// returned as refused and left out, never an error: a state that does not
// authenticate (forged, copied from another session, written by an older
// agent without MACs, damaged, or of an unknown version) is treated as
// absent, so what anyone holding Listen rights can write never decides a
// result. A MAC under a key this agent does not hold is ignored, as long as
// one under a key it holds verifies.
func (s *SessionSeal) Decode(raw []byte, b SessionBinding) (*SessionState, []Refused) {
	st := &SessionState{}
	if len(bytes.TrimSpace(raw)) == 0 {
		return st, nil
	}
	if len(raw) > maxDecodeBytes {
		return st, []Refused{{Reason: fmt.Sprintf("the state is %d bytes, more than %d; it was not written by wbagent", len(raw), maxDecodeBytes)}}
	}
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if lines[0] != SealedStateHeader {
		why := unsealedReason(lines[0])
		// Name the records it holds, when they can be read, for the audit.
		old, err := DecodeSessionState(raw)
		if err != nil || len(old.Records) == 0 {
			return st, []Refused{{Reason: why}}
		}
		refused := make([]Refused, len(old.Records))
		for i, r := range old.Records {
			refused[i] = Refused{ID: r.ID, State: r.State.String(), Reason: why}
		}
		return st, refused
	}
	var refused []Refused
	for _, l := range lines[1:] {
		r, why := s.openLine(l, b)
		if why != "" {
			refused = append(refused, Refused{ID: r.ID, State: stateWord(r), Reason: why})
			continue
		}
		st.Put(r)
	}
	return st, refused
}

// unsealedReason explains a state that is not in the sealed form.
func unsealedReason(first string) string {
	if v, ok := strings.CutPrefix(first, "wbagent-session-state "); ok {
		if v == "1" {
			return "the state is of version 1, which carries no MAC (an older wbagent wrote it, or someone imitating one)"
		}
		return fmt.Sprintf("the state is of unknown version %q", clip(v))
	}
	if _, err := ParseRecord(first); err == nil {
		return "the state holds bare records without a MAC (an older wbagent or a sender-side tool wrote it, or someone imitating one)"
	}
	return "the state is not a wbagent session state"
}

func stateWord(r Record) string {
	if r.State == Unknown {
		return ""
	}
	return r.State.String()
}

// openLine checks one record line; why is empty when it authenticates. On
// failure r holds whatever of the record could be read, for the report.
func (s *SessionSeal) openLine(line string, b SessionBinding) (r Record, why string) {
	tags, text, ok := strings.Cut(line, " ")
	if !ok || !strings.Contains(tags, ".") {
		r, _ := ParseRecord(line)
		return Record{ID: r.ID, State: r.State}, fmt.Sprintf("the record %q has no MAC", clip(line))
	}
	r, err := ParseRecord(text)
	if err != nil {
		word, rest, _ := strings.Cut(text, " ")
		id, _, _ := strings.Cut(rest, " ")
		if word == "applying" || word == "done" {
			if checkID(id) == nil {
				return Record{ID: id}, "the record cannot be read: " + err.Error()
			}
		}
		return Record{}, "the record cannot be read: " + err.Error()
	}
	held := false
	for _, tag := range strings.Split(tags, ",") {
		kid, enc, ok := strings.Cut(tag, ".")
		key, mine := s.byKID[kid]
		if !ok || !mine {
			continue
		}
		held = true
		got, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil {
			continue
		}
		if hmac.Equal(got, mac(key, b, r.ID, text)) {
			return r, ""
		}
	}
	if !held {
		return r, "no MAC under a key this agent holds (written with other decryption keys, or forged)"
	}
	return r, "the MAC does not verify: the record was forged, altered, or copied from another session or queue"
}
