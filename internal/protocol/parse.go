package protocol

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"wbagent/internal/wire"
)

// sealedSecret is the request's secret member before opening.
type sealedSecret struct {
	kid   string
	suite Suite
	enc   []byte
}

// parsedBody is what parseRequest finds beyond the Request fields.
type parsedBody struct {
	id     string // the body's id, which must equal the MessageID
	secret sealedSecret
}

// parseRequest reads a request body strictly (§3, §4) into req, filling
// fields as they prove valid so a rejection can still carry them. Errors
// name the failing rule and member, never a value that could be secret.
func parseRequest(body []byte, req *Request) (parsedBody, error) {
	var out parsedBody
	v, err := parseObject(body)
	if err != nil {
		return out, err
	}
	members := map[string]*jsonValue{}
	for i := range v.members {
		m := &v.members[i]
		switch m.name {
		case "v", "id", "op", "target", "options", "actor", "issuedAt", "expiresAt", "secret":
			members[m.name] = &m.value
		default:
			return out, fmt.Errorf("unknown member %s", quoteName(m.name))
		}
	}
	for _, name := range []string{"v", "id", "op", "target", "actor", "issuedAt", "expiresAt"} {
		if members[name] == nil {
			return out, fmt.Errorf("member %s is missing", name)
		}
	}
	// id first: a rejection is most useful with the request id.
	id, err := members["id"].text("id")
	if err != nil {
		return out, err
	}
	if !isCanonicalUUID(id) {
		return out, errors.New("id is not a UUID in lowercase canonical form")
	}
	out.id = id
	if req.ID == "" {
		req.ID = id // no MessageID: the body's id is the only one to answer with
	}
	if n, err := members["v"].integer("v"); err != nil {
		return out, err
	} else if n != 1 {
		return out, fmt.Errorf("v is %d; this agent speaks protocol version 1", n)
	}
	op, err := members["op"].text("op")
	if err != nil {
		return out, err
	}
	if !wire.Op(op).Valid() {
		return out, fmt.Errorf("op %q is not reset, change or unlock", truncate(op))
	}
	req.Op = wire.Op(op)
	if req.Target, err = parseTarget(members["target"]); err != nil {
		return out, err
	}
	if req.Actor, err = parseActor(members["actor"]); err != nil {
		return out, err
	}
	if o := members["options"]; o != nil {
		if err := parseOptions(o, req); err != nil {
			return out, err
		}
	}
	if req.Op == wire.OpUnlock {
		req.Unlock = true
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"issuedAt", &req.IssuedAt}, {"expiresAt", &req.ExpiresAt}} {
		s, err := members[t.name].text(t.name)
		if err != nil {
			return out, err
		}
		if *t.dst, err = parseTime(t.name, s); err != nil {
			return out, err
		}
	}
	switch sv := members["secret"]; {
	case hasSecret(req.Op) && sv == nil:
		return out, fmt.Errorf("member secret is missing; %s requires one", req.Op)
	case !hasSecret(req.Op) && sv != nil:
		return out, fmt.Errorf("member secret must be absent for %s", req.Op)
	case sv != nil:
		if out.secret, err = parseSealed(sv); err != nil {
			return out, err
		}
	}
	return out, nil
}

// parseTarget reads exactly one target form of §4.
func parseTarget(v *jsonValue) (Target, error) {
	var t Target
	err := v.stringMembers("target", true, map[string]*string{
		wire.FormObjectGUID: &t.ObjectGUID, wire.FormImmutableID: &t.ImmutableID,
		wire.FormUserPrincipalName: &t.UserPrincipalName, wire.FormSAMAccountName: &t.SAMAccountName,
		wire.FormDomain: &t.Domain,
	})
	if err != nil {
		return Target{}, err
	}
	if err := ValidateTarget(t); err != nil {
		return Target{}, err
	}
	return t, nil
}

// ValidateTarget reports the first way t breaks §4: not exactly one form, a
// domain without sAMAccountName, a malformed GUID or immutableId, or a
// control character in a value.
func ValidateTarget(t Target) error {
	forms := 0
	for _, s := range []string{t.ObjectGUID, t.ImmutableID, t.UserPrincipalName, t.SAMAccountName} {
		if s != "" {
			forms++
		}
	}
	switch {
	case forms != 1:
		return errors.New("target must have exactly one of objectGUID, immutableId, userPrincipalName, sAMAccountName")
	case t.Domain != "" && t.SAMAccountName == "":
		return errors.New("target.domain is allowed only with sAMAccountName")
	case t.ObjectGUID != "":
		if _, err := GUIDBytes(t.ObjectGUID); err != nil {
			return fmt.Errorf("target.objectGUID: %w", err)
		}
	case t.ImmutableID != "":
		if b, err := base64.StdEncoding.Strict().DecodeString(t.ImmutableID); err != nil || len(b) != 16 {
			return errors.New("target.immutableId is not base64 (with padding) of 16 bytes")
		}
	}
	for _, m := range t.Members() {
		if strings.ContainsFunc(m[1], isControl) {
			return fmt.Errorf("target.%s contains a control character", m[0])
		}
	}
	return nil
}

// isControl reports whether r is a C0 or C1 control character or DEL. A NUL
// would make the target key ambiguous; the others have no place in a name.
func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }

// parseActor reads the actor member of §3.
func parseActor(v *jsonValue) (Actor, error) {
	var a Actor
	if err := v.stringMembers("actor", false, map[string]*string{"id": &a.ID, "kind": &a.Kind, "ip": &a.IP}); err != nil {
		return Actor{}, err
	}
	if err := a.validate(); err != nil {
		return Actor{}, err
	}
	return a, nil
}

// validate reports the first way a breaks §3.
func (a Actor) validate() error {
	switch {
	case a.ID == "":
		return errors.New("actor.id is missing or empty")
	case a.Kind != ActorSelf && a.Kind != ActorAdmin && a.Kind != ActorSystem:
		return errors.New("actor.kind must be self, admin or system")
	}
	for name, s := range map[string]string{"id": a.ID, "kind": a.Kind, "ip": a.IP} {
		if strings.ContainsFunc(s, isControl) {
			return fmt.Errorf("actor.%s contains a control character", name)
		}
	}
	return nil
}

// parseOptions reads the options member of §3.
func parseOptions(v *jsonValue, req *Request) error {
	if err := v.object("options"); err != nil {
		return err
	}
	for i := range v.members {
		m := &v.members[i]
		var err error
		switch m.name {
		case "unlock":
			req.Unlock, err = m.value.boolean("options.unlock")
		case "mustChange":
			req.MustChange, err = m.value.boolean("options.mustChange")
		default:
			err = fmt.Errorf("unknown member %s in options", quoteName(m.name))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseSealed reads the secret member of §3; opening comes later, after
// the time checks.
func parseSealed(v *jsonValue) (sealedSecret, error) {
	var s sealedSecret
	if err := v.object("secret"); err != nil {
		return s, err
	}
	var enc string
	for i := range v.members {
		m := &v.members[i]
		text, err := m.value.text("secret." + m.name)
		if err != nil {
			return s, err
		}
		switch m.name {
		case "kid":
			s.kid = text
		case "suite":
			s.suite = Suite(text)
		case "enc":
			enc = text
		default:
			return s, fmt.Errorf("unknown member %s in secret", quoteName(m.name))
		}
	}
	if !wire.IsKID(s.kid) {
		return s, errors.New("secret.kid is not 16 lowercase hex characters")
	}
	if _, err := ParseSuite(string(s.suite)); err != nil {
		return s, errors.New("secret.suite must be x-wing or x25519")
	}
	var err error
	if s.enc, err = base64.RawURLEncoding.Strict().DecodeString(enc); err != nil || len(s.enc) == 0 {
		return s, errors.New("secret.enc is not base64url without padding")
	}
	return s, nil
}

// parseTime reads an RFC 3339 timestamp. RFC 3339 allows a lower-case t
// and z, which Go's layout does not; no other letter is valid, so
// upper-casing first is exact.
func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s))
	if err != nil {
		return time.Time{}, fmt.Errorf("%s is not an RFC 3339 timestamp", name)
	}
	return t, nil
}

// isCanonicalUUID reports whether s is 8-4-4-4-12 lowercase hex.
func isCanonicalUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !wire.IsLowerHexDigit(s[i]) {
				return false
			}
		}
	}
	return true
}

// GUIDBytes converts a GUID in the text form Windows prints
// (3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4, either case, no braces) to the 16
// bytes AD stores in objectGUID: the first three groups are little-endian.
func GUIDBytes(s string) ([16]byte, error) {
	var b [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return b, errors.New("not a GUID in 8-4-4-4-12 hex form")
	}
	// Only the four separators are taken out: a '-' anywhere else is not
	// a hex digit and must fail below, not shorten the digits.
	hexDigits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	var raw [16]byte
	for i := range raw {
		hi, ok1 := unhex(hexDigits[2*i])
		lo, ok2 := unhex(hexDigits[2*i+1])
		if !ok1 || !ok2 {
			return b, errors.New("not a GUID in 8-4-4-4-12 hex form")
		}
		raw[i] = hi<<4 | lo
	}
	// Data1 (4 bytes), Data2 and Data3 (2 bytes each) are little-endian.
	b[0], b[1], b[2], b[3] = raw[3], raw[2], raw[1], raw[0]
	b[4], b[5] = raw[5], raw[4]
	b[6], b[7] = raw[7], raw[6]
	copy(b[8:], raw[8:])
	return b, nil
}

// GUIDString is the inverse of GUIDBytes, in lowercase.
func GUIDString(b [16]byte) string {
	return fmt.Sprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%x-%x",
		b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8:10], b[10:])
}

func unhex(c byte) (byte, bool) {
	switch {
	case isDigit(c):
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// stringMembers reads the object member called name, whose members are
// all strings, into fields; an unknown member is an error, and so is an
// empty one when nonEmpty is set.
func (v *jsonValue) stringMembers(name string, nonEmpty bool, fields map[string]*string) error {
	if err := v.object(name); err != nil {
		return err
	}
	for i := range v.members {
		m := &v.members[i]
		dst, ok := fields[m.name]
		if !ok {
			return fmt.Errorf("unknown member %s in %s", quoteName(m.name), name)
		}
		s, err := m.value.text(name + "." + m.name)
		if err != nil {
			return err
		}
		if nonEmpty && s == "" {
			return fmt.Errorf("%s.%s is empty", name, m.name)
		}
		*dst = s
	}
	return nil
}
