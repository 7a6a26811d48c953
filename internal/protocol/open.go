package protocol

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"time"
	"unicode/utf8"

	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Limits bound the times a request may carry (§3). Both are required:
// the config owns their defaults (requests.maxClockSkew and
// requests.maxLifetime, 2 and 15 minutes as §3 suggests).
type Limits struct {
	// MaxClockSkew is how far issuedAt may lie in the future.
	MaxClockSkew time.Duration
	// MaxLifetime is the longest expiresAt - issuedAt allowed.
	MaxLifetime time.Duration
}

// Opener is the agent side of protocol v1: it turns a received message into
// an authenticated, validated request with its secret opened, or a
// classified Rejection. It is safe for concurrent use.
type Opener struct {
	keys    map[string]*DecryptionKey
	senders map[string]ed25519.PublicKey
	limits  Limits
}

// NewOpener makes an Opener that opens secrets with keys (chosen by kid, so
// several may be held during rotation) and trusts requests signed by the
// given sender public keys. A zero limit is an error.
func NewOpener(keys []*DecryptionKey, senders []ed25519.PublicKey, limits Limits) (*Opener, error) {
	if len(senders) == 0 {
		return nil, errors.New("protocol opener: no trusted sender keys; add at least one sender public key")
	}
	if limits.MaxClockSkew <= 0 || limits.MaxLifetime <= 0 {
		return nil, fmt.Errorf("protocol opener: limits %s skew, %s lifetime: give both as positive durations (requests.maxClockSkew, requests.maxLifetime)",
			limits.MaxClockSkew, limits.MaxLifetime)
	}
	o := &Opener{keys: map[string]*DecryptionKey{}, senders: map[string]ed25519.PublicKey{}, limits: limits}
	for _, k := range keys {
		if k == nil {
			return nil, errors.New("protocol opener: nil decryption key")
		}
		if _, dup := o.keys[k.kid]; dup {
			return nil, fmt.Errorf("protocol opener: decryption key %s is listed twice", k.kid)
		}
		o.keys[k.kid] = k
	}
	for _, pub := range senders {
		if len(pub) != ed25519.PublicKeySize {
			return nil, errors.New("protocol opener: a sender key is not an Ed25519 public key")
		}
		kid := KID(pub)
		if _, dup := o.senders[kid]; dup {
			return nil, fmt.Errorf("protocol opener: sender key %s is listed twice", kid)
		}
		o.senders[kid] = append(ed25519.PublicKey(nil), pub...)
	}
	return o, nil
}

// Open checks m in the order of the spec — size and content type, the
// signature over the raw body, strict JSON, times, then decryption — and
// returns the request, or a *Rejection saying how to settle the message.
// now is the agent's clock. The caller must Destroy the request when done.
func (o *Opener) Open(m Message, now time.Time) (*Request, error) {
	rej := func(c Class, rule string, req *Request) *Rejection {
		sender, _ := m.property(PropSender)
		return &Rejection{Class: c, Rule: rule, MessageID: m.MessageID, SenderKID: sender, Request: req}
	}
	// 1. Size and content type, before spending a signature check.
	if len(m.Body) == 0 {
		return nil, rej(Malformed, "body is empty; a request is one AMQP data section holding the JSON", nil)
	}
	if len(m.Body) > MaxBodySize {
		return nil, rej(Malformed, fmt.Sprintf("body is %d bytes, more than the %d allowed", len(m.Body), MaxBodySize), nil)
	}
	if !sameMediaType(m.ContentType, RequestContentType) {
		return nil, rej(Malformed, fmt.Sprintf("content type %q is not %s", truncate(m.ContentType), RequestContentType), nil)
	}
	// 2. Signature over the exact body bytes.
	kid, ok := m.property(PropSender)
	if !ok {
		return nil, rej(Unauthenticated, "application property wb-sender is missing or not a string", nil)
	}
	pub, ok := o.senders[kid]
	if !ok {
		return nil, rej(Unauthenticated, fmt.Sprintf("sender key %q is not trusted", truncate(kid)), nil)
	}
	sigText, ok := m.property(PropSignature)
	if !ok {
		return nil, rej(Unauthenticated, "application property wb-sig is missing or not a string", nil)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigText)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return nil, rej(Unauthenticated, "wb-sig is not a base64url Ed25519 signature", nil)
	}
	if !ed25519.Verify(pub, m.Body, sig) {
		return nil, rej(Unauthenticated, fmt.Sprintf("signature does not verify with sender key %s", kid), nil)
	}
	// Authenticated: from here on a result goes back to ReplyTo.
	req := &Request{
		ID: m.MessageID, SenderKID: kid,
		ReplyTo: m.ReplyTo, ReplyToSessionID: m.ReplyToSessionID, SessionID: m.SessionID,
	}
	// 3. Strict JSON.
	body, err := parseRequest(m.Body, req)
	if err != nil {
		return nil, rej(Invalid, err.Error(), req)
	}
	if body.id != m.MessageID {
		return nil, rej(Invalid, fmt.Sprintf("body id %s differs from the MessageID", body.id), req)
	}
	if m.SessionID != "" && m.SessionID != req.Target.SessionID() {
		return nil, rej(Invalid, fmt.Sprintf("SessionID is not %s, the session of the target", req.Target.SessionID()), req)
	}
	// 4. Times.
	switch {
	case !req.ExpiresAt.After(req.IssuedAt):
		return nil, rej(Invalid, "expiresAt is not after issuedAt", req)
	case req.ExpiresAt.Sub(req.IssuedAt) > o.limits.MaxLifetime:
		return nil, rej(Invalid, fmt.Sprintf("lifetime expiresAt - issuedAt is %s, more than the %s allowed", req.ExpiresAt.Sub(req.IssuedAt), o.limits.MaxLifetime), req)
	case req.IssuedAt.Sub(now) > o.limits.MaxClockSkew:
		return nil, rej(Invalid, fmt.Sprintf("issuedAt is %s in the future, more than the allowed clock skew of %s", req.IssuedAt.Sub(now).Round(time.Second), o.limits.MaxClockSkew), req)
	case !now.Before(req.ExpiresAt):
		return nil, rej(Expired, fmt.Sprintf("expiresAt passed %s ago", now.Sub(req.ExpiresAt).Round(time.Second)), req)
	}
	// 5. Decryption.
	if !hasSecret(req.Op) {
		return req, nil
	}
	if err := o.openSecret(req, body.secret); err != nil {
		return nil, rej(Invalid, err.Error(), req)
	}
	return req, nil
}

// openSecret opens the sealed secret into req.New and req.Old, wiping the
// plaintext. Errors describe the rule broken, never the plaintext.
func (o *Opener) openSecret(req *Request, s sealedSecret) error {
	key, ok := o.keys[s.kid]
	if !ok {
		return fmt.Errorf("secret.kid %s names no decryption key this agent holds", s.kid)
	}
	if key.suite != s.suite {
		return fmt.Errorf("secret.suite %s does not match decryption key %s, which is %s", s.suite, s.kid, key.suite)
	}
	plain, err := hpke.Open(key.priv, suiteKDF, suiteAEAD, sealInfo(req.ID, req.Op, req.Target), s.enc)
	if err != nil {
		return fmt.Errorf("secret does not open with key %s: it was sealed for another key, request id, op or target, or altered", s.kid)
	}
	defer clear(plain)
	newPw, oldPw, err := parsePlaintext(plain, req.Op)
	if err != nil {
		return err
	}
	req.SecretKID, req.Suite, req.New, req.Old = s.kid, s.suite, newPw, oldPw
	return nil
}

// sealInfo is the HPKE info of §3: "wbagent-request-v1" 0x00 id 0x00 op
// 0x00 targetKey. It binds a ciphertext to one request, op and target.
func sealInfo(id string, op wire.Op, t Target) []byte {
	key := t.Key()
	info := make([]byte, 0, len("wbagent-request-v1")+3+len(id)+len(op)+len(key))
	info = append(info, "wbagent-request-v1"...)
	info = append(info, 0)
	info = append(info, id...)
	info = append(info, 0)
	info = append(info, op...)
	info = append(info, 0)
	return append(info, key...)
}

// parsePlaintext reads {"new": ...} (reset) or {"old": ..., "new": ...}
// (change) and checks the password rules. Nothing of the plaintext reaches
// an error: not even member names, in case a sender put a password there.
func parsePlaintext(plain []byte, op wire.Op) (newPw, oldPw *secret.Secret, err error) {
	v, err := parseJSON(plain)
	defer v.wipe()
	if err != nil {
		return nil, nil, errors.New("the opened secret is not valid JSON")
	}
	if v.kind != jObject {
		return nil, nil, errors.New("the opened secret is not a JSON object")
	}
	var gotNew, gotOld *jsonValue
	for i := range v.members {
		switch m := &v.members[i]; m.name {
		case "new":
			gotNew = &m.value
		case "old":
			gotOld = &m.value
		default:
			return nil, nil, errors.New("the opened secret has a member other than old and new")
		}
	}
	if gotNew == nil {
		return nil, nil, errors.New("the opened secret has no new password")
	}
	if op == wire.OpChange && gotOld == nil {
		return nil, nil, errors.New("the opened secret of a change has no old password")
	}
	if op == wire.OpReset && gotOld != nil {
		return nil, nil, errors.New("the opened secret of a reset has an old password")
	}
	if err := checkPassword("new", gotNew); err != nil {
		return nil, nil, err
	}
	newPw = secret.New(gotNew.s)
	if gotOld != nil {
		if err := checkPassword("old", gotOld); err != nil {
			newPw.Destroy()
			return nil, nil, err
		}
		oldPw = secret.New(gotOld.s)
	}
	return newPw, oldPw, nil
}

// Password rules of §3.
const (
	MinPasswordRunes = 1
	MaxPasswordRunes = 256
)

// checkPassword applies the password rules: a string of 1 to 256 code
// points, valid UTF-8 (the parser guarantees it), no NUL.
func checkPassword(which string, v *jsonValue) error {
	if v.kind != jString {
		return fmt.Errorf("the %s password is not a string", which)
	}
	return CheckPassword(which, v.s)
}

// CheckPassword reports whether pw obeys the password rules of §3; which
// ("new" or "old") names it in the error. Senders call it before sealing.
func CheckPassword(which string, pw []byte) error {
	if !utf8.Valid(pw) {
		return fmt.Errorf("the %s password is not valid UTF-8", which)
	}
	if n := utf8.RuneCount(pw); n < MinPasswordRunes || n > MaxPasswordRunes {
		return fmt.Errorf("the %s password must have %d to %d code points", which, MinPasswordRunes, MaxPasswordRunes)
	}
	for _, c := range pw {
		if c == 0 {
			return fmt.Errorf("the %s password contains a NUL character", which)
		}
	}
	return nil
}

// sameMediaType reports whether got names the media type want, comparing as
// RFC 2045 does: type and parameter names case-insensitively, optional
// whitespace around ';' ignored.
func sameMediaType(got, want string) bool {
	if got == want {
		return true
	}
	gt, gp, err := mime.ParseMediaType(got)
	if err != nil {
		return false
	}
	wt, wp, _ := mime.ParseMediaType(want)
	if gt != wt || len(gp) != len(wp) {
		return false
	}
	for k, v := range wp {
		if gp[k] != v {
			return false
		}
	}
	return true
}
