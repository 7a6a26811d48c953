package protocol

import (
	"crypto/ed25519"
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"wbagent/internal/wire"
)

// fixture holds a sender, agent keys of both suites and an opener trusting
// the sender, for tests that craft requests.
type fixture struct {
	sender *SigningKey
	xwing  *DecryptionKey
	x25519 *DecryptionKey
	opener *Opener
	now    time.Time
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{now: time.Date(2026, 11, 24, 18, 1, 0, 0, time.UTC)}
	var err error
	if f.sender, err = GenerateSigningKey(); err != nil {
		t.Fatal(err)
	}
	if f.xwing, err = GenerateDecryptionKey(SuiteXWing); err != nil {
		t.Fatal(err)
	}
	if f.x25519, err = GenerateDecryptionKey(SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if f.opener, err = NewOpener([]*DecryptionKey{f.xwing, f.x25519}, []ed25519.PublicKey{f.sender.Public()}, testLimits); err != nil {
		t.Fatal(err)
	}
	return f
}

const testPassword = "Corr3ct-Horse-Battery"

// spec returns a valid reset request for tests to vary.
func (f *fixture) spec() RequestSpec {
	return RequestSpec{
		ID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", Op: wire.OpReset,
		Target:   Target{ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
		Actor:    Actor{ID: "helpdesk@contoso.example", Kind: ActorAdmin, IP: "203.0.113.7"},
		IssuedAt: f.now.Add(-time.Minute), ExpiresAt: f.now.Add(4 * time.Minute),
		New: secretOf(testPassword), ReplyTo: "results", ReplyToSessionID: "rs",
	}
}

func (f *fixture) build(t testing.TB, spec RequestSpec, key *DecryptionKey) Message {
	t.Helper()
	m, err := BuildRequest(f.sender, key.Public(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// resign replaces the body and signs it again, as a trusted but faulty
// sender would.
func (f *fixture) resign(m Message, body string) Message {
	m.Body = []byte(body)
	m.ApplicationProperties = map[string]any{PropSender: f.sender.KID(), PropSignature: f.sender.Sign(m.Body)}
	return m
}

// sealRaw seals an arbitrary plaintext for spec's id, op and target.
func sealRaw(t testing.TB, key *DecryptionKey, spec RequestSpec, plain string) string {
	t.Helper()
	enc, err := hpke.Seal(key.Public().pub, suiteKDF, suiteAEAD, sealInfo(spec.ID, spec.Op, spec.Target), []byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(enc)
}

func TestOpenAccepts(t *testing.T) {
	f := newFixture(t)
	for _, key := range []*DecryptionKey{f.xwing, f.x25519} {
		for _, op := range []wire.Op{wire.OpReset, wire.OpChange, wire.OpUnlock} {
			spec := f.spec()
			spec.Op = op
			spec.Session = true
			spec.MustChange = op == wire.OpReset
			switch op {
			case wire.OpChange:
				spec.Old = secretOf("old-" + testPassword)
			case wire.OpUnlock:
				spec.New = nil
			}
			req, err := f.opener.Open(f.build(t, spec, key), f.now)
			if err != nil {
				t.Fatalf("%s %s: %v", key.Suite(), op, err)
			}
			if req.Op != op || req.ID != spec.ID || req.Actor != spec.Actor || !req.IssuedAt.Equal(spec.IssuedAt) || !req.ExpiresAt.Equal(spec.ExpiresAt) {
				t.Errorf("%s %s: fields %+v", key.Suite(), op, req)
			}
			if req.SenderKID != f.sender.KID() || req.SessionID != spec.Target.SessionID() {
				t.Errorf("sender kid %s session %s", req.SenderKID, req.SessionID)
			}
			if op == wire.OpUnlock {
				if !req.Unlock || req.New != nil || req.SecretKID != "" {
					t.Errorf("unlock: %+v", req)
				}
				continue
			}
			if req.New.Reveal() != testPassword || req.SecretKID != key.KID() || req.Suite != key.Suite() || req.MustChange != (op == wire.OpReset) {
				t.Errorf("%s %s: opened %+v", key.Suite(), op, req)
			}
			if op == wire.OpChange && req.Old.Reveal() != "old-"+testPassword {
				t.Error("old password not opened")
			}
			newPw := req.New
			req.Destroy()
			if !newPw.IsEmpty() {
				t.Error("Destroy left the password in place")
			}
		}
	}
}

func TestOpenRules(t *testing.T) {
	f := newFixture(t)
	valid := f.build(t, f.spec(), f.xwing)
	body := string(valid.Body)
	enc := body[strings.Index(body, `"enc":"`)+7:]
	enc = enc[:strings.IndexByte(enc, '"')]
	replace := func(old, new string) func(Message) Message {
		return func(m Message) Message {
			if !strings.Contains(string(m.Body), old) {
				t.Fatalf("test body lacks %q: %s", old, m.Body)
			}
			return f.resign(m, strings.Replace(string(m.Body), old, new, 1))
		}
	}
	withBody := func(b string) func(Message) Message {
		return func(m Message) Message { return f.resign(m, b) }
	}
	plaintext := func(plain string) func(Message) Message {
		return replace(enc, sealRaw(t, f.xwing, f.spec(), plain))
	}
	guid := `"target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"}`
	cases := []struct {
		name  string
		edit  func(Message) Message
		class Class
		rule  string // a fragment the rule must contain
	}{
		{"too large", func(m Message) Message { m.Body = make([]byte, MaxBodySize+1); return m }, Malformed, "bytes"},
		{"content type", func(m Message) Message { m.ContentType = "application/json"; return m }, Malformed, "content type"},
		{"content type version", func(m Message) Message { m.ContentType = "application/vnd.wbagent.request+json;v=2"; return m }, Malformed, "content type"},
		{"no sender", func(m Message) Message { delete(m.ApplicationProperties, PropSender); return m }, Unauthenticated, "wb-sender"},
		{"unknown sender", func(m Message) Message { m.ApplicationProperties[PropSender] = "0011223344556677"; return m }, Unauthenticated, "not trusted"},
		{"sender not string", func(m Message) Message { m.ApplicationProperties[PropSender] = []byte(f.sender.KID()); return m }, Unauthenticated, "wb-sender"},
		{"no signature", func(m Message) Message { delete(m.ApplicationProperties, PropSignature); return m }, Unauthenticated, "wb-sig"},
		{"padded signature", func(m Message) Message {
			m.ApplicationProperties[PropSignature] = m.ApplicationProperties[PropSignature].(string) + "=="
			return m
		}, Unauthenticated, "base64url"},
		{"signature of other body", func(m Message) Message { m.Body = append(m.Body, ' '); return m }, Unauthenticated, "does not verify"},
		{"not json", withBody("hello"), Invalid, "invalid JSON"},
		{"empty body", withBody(""), Malformed, "body is empty"},
		{"blank body", withBody(" "), Invalid, "invalid JSON"},
		{"array body", withBody("[]"), Invalid, "not a JSON object"},
		{"trailing data", replace(body, body+"{}"), Invalid, "after the JSON value"},
		{"duplicate member", replace(`"op":"reset"`, `"op":"reset","op":"unlock"`), Invalid, "duplicate member"},
		{"duplicate in target", replace(guid, `"target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4","objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"}`), Invalid, "duplicate member"},
		{"unknown member", replace(`"v":1`, `"v":1,"priority":"high"`), Invalid, `unknown member "priority"`},
		{"version 2", replace(`"v":1`, `"v":2`), Invalid, "version 1"},
		{"version string", replace(`"v":1`, `"v":"1"`), Invalid, "v must be an integer"},
		{"version float", replace(`"v":1`, `"v":1.0`), Invalid, "without fraction"},
		{"missing v", replace(`"v":1,`, ``), Invalid, "member v is missing"},
		{"id upper case", replace(`"id":"0b6f7c1e`, `"id":"0B6F7C1E`), Invalid, "lowercase canonical"},
		{"id mismatch", func(m Message) Message {
			m.MessageID = "11111111-2222-4333-8444-555555555555"
			return replace("x", "x")(m)
		}, Invalid, "differs from the MessageID"},
		{"op unknown", replace(`"op":"reset"`, `"op":"delete"`), Invalid, "not reset, change or unlock"},
		{"op not string", replace(`"op":"reset"`, `"op":null`), Invalid, "op must be a string"},
		{"two target forms", replace(guid, `"target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4","userPrincipalName":"a@b"}`), Invalid, "exactly one"},
		{"empty target", replace(guid, `"target":{}`), Invalid, "exactly one"},
		{"target not object", replace(guid, `"target":"alice"`), Invalid, "target must be an object"},
		{"domain with guid", replace(guid, `"target":{"domain":"CORP","objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"}`), Invalid, "domain is allowed only"},
		{"bad guid", replace(guid, `"target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01dz"}`), Invalid, "objectGUID"},
		{"braced guid", replace(guid, `"target":{"objectGUID":"{3ee39ba2-5a35-4c3e-944a-aeb0a79c01d}"}`), Invalid, "objectGUID"},
		{"immutableId short", replace(guid, `"target":{"immutableId":"opvjPjVaPkyUSq6wp5wB"}`), Invalid, "16 bytes"},
		{"immutableId unpadded", replace(guid, `"target":{"immutableId":"opvjPjVaPkyUSq6wp5wB1A"}`), Invalid, "16 bytes"},
		{"NUL in target", replace(guid, `"target":{"sAMAccountName":"a\u0000b"}`), Invalid, "control character"},
		{"empty upn", replace(guid, `"target":{"userPrincipalName":""}`), Invalid, "empty"},
		{"unknown target form", replace(guid, `"target":{"mail":"a@b"}`), Invalid, `unknown member "mail" in target`},
		{"actor missing", replace(`"actor":{"id":"helpdesk@contoso.example","kind":"admin","ip":"203.0.113.7"},`, ``), Invalid, "actor is missing"},
		{"actor kind", replace(`"kind":"admin"`, `"kind":"root"`), Invalid, "actor.kind"},
		{"actor id empty", replace(`"id":"helpdesk@contoso.example"`, `"id":""`), Invalid, "actor.id"},
		{"actor extra", replace(`"kind":"admin"`, `"kind":"admin","role":"x"`), Invalid, `unknown member "role" in actor`},
		{"actor ip number", replace(`"ip":"203.0.113.7"`, `"ip":7`), Invalid, "actor.ip must be a string"},
		{"options null", replace(`"actor":`, `"options":null,"actor":`), Invalid, "options must be an object"},
		{"options string bool", replace(`"actor":`, `"options":{"unlock":"yes"},"actor":`), Invalid, "options.unlock must be true or false"},
		{"options unknown", replace(`"actor":`, `"options":{"force":true},"actor":`), Invalid, `unknown member "force" in options`},
		{"issuedAt format", replace(`"issuedAt":"2026-11-24T18:00:00Z"`, `"issuedAt":"2026-11-24 18:00:00"`), Invalid, "RFC 3339"},
		{"expiresAt before issuedAt", replace(`"expiresAt":"2026-11-24T18:05:00Z"`, `"expiresAt":"2026-11-24T17:59:00Z"`), Invalid, "not after issuedAt"},
		{"issued in the future", replace(`"issuedAt":"2026-11-24T18:00:00Z"`, `"issuedAt":"2026-11-24T18:03:01Z"`), Invalid, "clock skew"},
		{"lifetime", replace(`"issuedAt":"2026-11-24T18:00:00Z"`, `"issuedAt":"2026-11-24T17:49:59Z"`), Invalid, "lifetime"},
		{"expired", replace(`"expiresAt":"2026-11-24T18:05:00Z"`, `"expiresAt":"2026-11-24T18:01:00Z"`), Expired, "expiresAt passed"},
		{"secret missing", replace(body[strings.Index(body, `,"secret":`):], `}`), Invalid, "secret is missing"},
		{"secret for unlock", replace(`"op":"reset"`, `"op":"unlock"`), Invalid, "secret must be absent"},
		{"secret kid form", replace(`"kid":"`+f.xwing.KID(), `"kid":"`+strings.ToUpper(f.xwing.KID())), Invalid, "secret.kid"},
		{"secret unknown kid", replace(`"kid":"`+f.xwing.KID(), `"kid":"0123456789abcdef`), Invalid, "names no decryption key"},
		{"secret suite mismatch", replace(`"suite":"x-wing"`, `"suite":"x25519"`), Invalid, "does not match decryption key"},
		{"secret suite unknown", replace(`"suite":"x-wing"`, `"suite":"kyber"`), Invalid, "secret.suite"},
		{"secret enc padded", replace(enc+`"`, enc+`=="`), Invalid, "secret.enc"},
		{"secret enc truncated", replace(enc+`"`, enc[:len(enc)-8]+`"`), Invalid, "does not open"},
		{"secret extra member", replace(`"suite":"x-wing"`, `"suite":"x-wing","alg":"x"`), Invalid, `unknown member "alg" in secret`},
		{"session mismatch", func(m Message) Message { m.SessionID = "u:00000000000000000000000000000000"; return m }, Invalid, "SessionID"},
		{"invalid UTF-8", replace(`"id":"helpdesk@contoso.example"`, "\"id\":\"help\xffdesk\""), Invalid, "invalid UTF-8"},
		{"lone surrogate", replace(`"id":"helpdesk@contoso.example"`, `"id":"help\ud800desk"`), Invalid, "surrogate"},
		{"control char raw", replace(`"id":"helpdesk@contoso.example"`, "\"id\":\"help\tdesk\""), Invalid, "control character"},
		{"deep nesting", replace(`"v":1`, `"v":1,"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)), Invalid, "nested deeper"},
		{"password empty", plaintext(`{"new":""}`), Invalid, "1 to 256 code points"},
		{"password 257", plaintext(`{"new":"` + strings.Repeat("é", 257) + `"}`), Invalid, "1 to 256 code points"},
		{"password NUL", plaintext(`{"new":"a\u0000b"}`), Invalid, "NUL"},
		{"password lone surrogate", plaintext(`{"new":"a\udc00b"}`), Invalid, "not valid JSON"},
		{"password invalid UTF-8", plaintext("{\"new\":\"a\xc3b\"}"), Invalid, "not valid JSON"},
		{"password not string", plaintext(`{"new":12345678}`), Invalid, "not a string"},
		{"plaintext extra member", plaintext(`{"new":"x","Secr3t!":"y"}`), Invalid, "other than old and new"},
		{"plaintext duplicate", plaintext(`{"new":"x","new":"y"}`), Invalid, "not valid JSON"},
		{"reset with old", plaintext(`{"old":"x","new":"y"}`), Invalid, "reset has an old password"},
		{"plaintext no new", plaintext(`{}`), Invalid, "no new password"},
		{"plaintext not object", plaintext(`"x"`), Invalid, "not a JSON object"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := valid
			m.Body = append([]byte(nil), valid.Body...)
			m.ApplicationProperties = map[string]any{PropSender: valid.ApplicationProperties[PropSender], PropSignature: valid.ApplicationProperties[PropSignature]}
			m = c.edit(m)
			req, err := f.opener.Open(m, f.now)
			var rej *Rejection
			if !errors.As(err, &rej) {
				req.Destroy()
				t.Fatalf("Open = %v, %v; want rejection %s", req, err, c.class)
			}
			if rej.Class != c.class || !strings.Contains(rej.Rule, c.rule) {
				t.Fatalf("got %s %q, want %s containing %q", rej.Class, rej.Rule, c.class, c.rule)
			}
			for _, leak := range []string{testPassword, "Secr3t!", enc[:20]} {
				if strings.Contains(rej.Error(), leak) {
					t.Errorf("rule %q leaks %q", rej.Error(), leak)
				}
			}
			switch c.class {
			case Malformed, Unauthenticated:
				if rej.Request != nil {
					t.Error("unauthenticated rejection carries request fields")
				}
			default:
				if rej.Request == nil || rej.Request.ID != m.MessageID || rej.Request.ReplyTo != "results" || rej.Request.New != nil {
					t.Errorf("rejection request %+v", rej.Request)
				}
			}
		})
	}
}

func TestOpenBoundaries(t *testing.T) {
	f := newFixture(t)
	spec := f.spec()
	// issuedAt exactly the allowed skew ahead, lifetime exactly the maximum:
	// both accepted.
	spec.IssuedAt = f.now.Add(testLimits.MaxClockSkew)
	spec.ExpiresAt = spec.IssuedAt.Add(testLimits.MaxLifetime)
	req, err := f.opener.Open(f.build(t, spec, f.x25519), f.now)
	if err != nil {
		t.Fatalf("boundary request rejected: %v", err)
	}
	req.Destroy()
	// The expired request carries what the result and audit need.
	spec = f.spec()
	_, err = f.opener.Open(f.build(t, spec, f.x25519), spec.ExpiresAt)
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Class != Expired || rej.Request.Op != wire.OpReset || rej.Request.Target != spec.Target || rej.Request.Actor != spec.Actor || rej.Request.New != nil {
		t.Fatalf("at expiresAt: %v %+v", err, rej)
	}
	// Without a MessageID the rejection answers with the body's id.
	m0 := f.build(t, f.spec(), f.x25519)
	m0.MessageID = ""
	_, err = f.opener.Open(m0, f.now)
	if !errors.As(err, &rej) || rej.Class != Invalid || rej.Request.ID != f.spec().ID {
		t.Fatalf("no MessageID: %v %+v", err, rej)
	}
	// RFC 3339 allows lower-case t and z, and offsets.
	m1 := f.build(t, f.spec(), f.x25519)
	m1 = f.resign(m1, strings.Replace(strings.Replace(string(m1.Body), `"2026-11-24T18:00:00Z"`, `"2026-11-24t19:00:00+01:00"`, 1), `"2026-11-24T18:05:00Z"`, `"2026-11-24t18:05:00z"`, 1))
	req, err = f.opener.Open(m1, f.now)
	if err != nil {
		t.Fatalf("lower-case RFC 3339: %v", err)
	}
	if !req.IssuedAt.Equal(f.spec().IssuedAt) {
		t.Errorf("issuedAt %v", req.IssuedAt)
	}
	req.Destroy()
	// Equivalent spellings of the content type are the same media type.
	m := f.build(t, f.spec(), f.x25519)
	m.ContentType = "Application/vnd.wbagent.request+json; v=1"
	req, err = f.opener.Open(m, f.now)
	if err != nil {
		t.Fatalf("content type with space: %v", err)
	}
	req.Destroy()
	// Password of exactly 256 code points, with characters needing escapes.
	spec = f.spec()
	spec.New = secretOf(strings.Repeat("\"\\\x01é", 64))
	req, err = f.opener.Open(f.build(t, spec, f.xwing), f.now)
	if err != nil {
		t.Fatalf("256 code points: %v", err)
	}
	if req.New.Reveal() != strings.Repeat("\"\\\x01é", 64) {
		t.Error("escaped password did not survive the round trip")
	}
	req.Destroy()
}

// testLimits are §3's suggested limits, the config's defaults.
var testLimits = Limits{MaxClockSkew: 2 * time.Minute, MaxLifetime: 15 * time.Minute}

func TestNewOpenerRefuses(t *testing.T) {
	f := newFixture(t)
	pub := f.sender.Public()
	for name, call := range map[string]func() error{
		"no senders":   func() error { _, err := NewOpener([]*DecryptionKey{f.xwing}, nil, testLimits); return err },
		"short sender": func() error { _, err := NewOpener(nil, []ed25519.PublicKey{pub[:31]}, testLimits); return err },
		"duplicate key": func() error {
			_, err := NewOpener([]*DecryptionKey{f.xwing, f.xwing}, []ed25519.PublicKey{pub}, testLimits)
			return err
		},
		"duplicate sender": func() error { _, err := NewOpener(nil, []ed25519.PublicKey{pub, pub}, testLimits); return err },
		"nil key": func() error {
			_, err := NewOpener([]*DecryptionKey{nil}, []ed25519.PublicKey{pub}, testLimits)
			return err
		},
		"no skew": func() error {
			_, err := NewOpener(nil, []ed25519.PublicKey{pub}, Limits{MaxLifetime: time.Minute})
			return err
		},
		"no lifetime": func() error {
			_, err := NewOpener(nil, []ed25519.PublicKey{pub}, Limits{MaxClockSkew: time.Minute})
			return err
		},
	} {
		if call() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestBuildRequestRefuses(t *testing.T) {
	f := newFixture(t)
	pub := f.xwing.Public()
	for name, edit := range map[string]func(*RequestSpec){
		"bad id":          func(s *RequestSpec) { s.ID = "X" },
		"bad op":          func(s *RequestSpec) { s.Op = "delete" },
		"no target":       func(s *RequestSpec) { s.Target = Target{} },
		"bad actor":       func(s *RequestSpec) { s.Actor.Kind = "root" },
		"times":           func(s *RequestSpec) { s.ExpiresAt = s.IssuedAt },
		"no password":     func(s *RequestSpec) { s.New = nil },
		"NUL password":    func(s *RequestSpec) { s.New = secretOf("a\x00b") },
		"long password":   func(s *RequestSpec) { s.New = secretOf(strings.Repeat("x", 257)) },
		"invalid UTF-8":   func(s *RequestSpec) { s.New = secretOf("\xff") },
		"old with reset":  func(s *RequestSpec) { s.Old = secretOf("x") },
		"change no old":   func(s *RequestSpec) { s.Op = wire.OpChange },
		"unlock password": func(s *RequestSpec) { s.Op = wire.OpUnlock },
	} {
		spec := f.spec()
		edit(&spec)
		if _, err := BuildRequest(f.sender, pub, spec); err == nil {
			t.Errorf("%s: built", name)
		} else if strings.Contains(err.Error(), testPassword) {
			t.Errorf("%s: error leaks the password", name)
		}
	}
	spec := f.spec()
	spec.ID = ""
	m, err := BuildRequest(f.sender, pub, spec)
	if err != nil || !isCanonicalUUID(m.MessageID) || m.TimeToLive != 5*time.Minute || m.Subject != "reset" || m.SessionID != "" {
		t.Fatalf("generated request: %+v %v", m, err)
	}
}
