package directory

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/secret"
)

// GUIDBytes parses a GUID in the text form Windows prints into objectGUID's
// 16 stored bytes (the first three groups are little-endian).
func GUIDBytes(s string) ([]byte, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, fmt.Errorf("objectGUID %q: want xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	// Only the four separators are taken out: a '-' anywhere else must fail
	// as a bad digit, not shorten the GUID.
	raw, err := hex.DecodeString(s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36])
	if err != nil {
		return nil, fmt.Errorf("objectGUID %q: %w", s, err)
	}
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(b[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(b[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(b[8:], raw[8:])
	return b, nil
}

// GUIDString formats objectGUID's stored bytes the way Windows prints them.
func GUIDString(b []byte) string {
	if len(b) != 16 {
		return ""
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]), binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]), b[8:10], b[10:16])
}

// ImmutableIDBytes decodes an immutableId (base64 of 16 bytes).
func ImmutableIDBytes(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimSpace(s))
	}
	if err != nil || len(b) != 16 {
		return nil, fmt.Errorf("immutableId %q: want base64 of 16 bytes", s)
	}
	return b, nil
}

// EscapeBinary writes b for an LDAP filter with every byte escaped
// (\a2\9b…), which every directory accepts for binary attributes.
func EscapeBinary(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, "\\%02x", c)
	}
	return sb.String()
}

// encodePassword returns the unicodePwd value: the password in double
// quotes, UTF-16LE. It refuses invalid UTF-8 and NUL.
func encodePassword(p *secret.Secret) ([]byte, error) {
	b := p.Bytes()
	if len(b) == 0 {
		return nil, errors.New("password is empty")
	}
	out := make([]byte, 0, 2*len(b)+4)
	put := func(r rune) {
		for _, u := range utf16.Encode([]rune{r}) {
			out = binary.LittleEndian.AppendUint16(out, u)
		}
	}
	put('"')
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			clear(out)
			return nil, errors.New("password is not valid UTF-8")
		}
		if r == 0 {
			clear(out)
			return nil, errors.New("password contains NUL")
		}
		put(r)
		b = b[n:]
	}
	put('"')
	return out, nil
}

// policyHints is LDAP_SERVER_POLICY_HINTS (1.2.840.113556.1.4.2239, or the
// older 2066): value SEQUENCE { INTEGER 1 }, always critical. It is written
// by hand because go-ldap encodes criticality TRUE as 0x01 (ber.NewBoolean),
// which Samba reads as FALSE; BER's canonical TRUE is 0xFF.
type policyHints struct{ oid string }

// GetControlType implements ldap.Control.
func (c policyHints) GetControlType() string { return c.oid }

// Encode implements ldap.Control.
func (c policyHints) Encode() *ber.Packet {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "Control")
	p.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, c.oid, "Control Type"))
	p.AppendChild(ber.NewLDAPBoolean(ber.ClassUniversal, ber.TypePrimitive, ber.TagBoolean, true, "Criticality"))
	seq := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "PolicyHintsRequestValue")
	seq.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "Flags"))
	value := ber.Encode(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, nil, "Control Value")
	value.AppendChild(seq)
	p.AppendChild(value)
	return p
}

// String implements ldap.Control.
func (c policyHints) String() string {
	return "Control Type: LDAP_SERVER_POLICY_HINTS (" + strconv.Quote(c.oid) + ")  Criticality: true  Flags: 1"
}

var _ ldap.Control = policyHints{}

// fileTime converts an AD FILETIME (100 ns since 1601) to time; 0 and the
// "never" value give the zero time.
func fileTime(v int64) time.Time {
	const epochDiff = 116444736000000000 // 1601 → 1970 in 100 ns
	if v <= 0 || v == 1<<63-1 {
		return time.Time{}
	}
	return time.Unix(0, (v-epochDiff)*100).UTC()
}

// sidWithRID returns a copy of a binary SID with its last sub-authority
// replaced by rid: from a user's SID, the SID of a group of its domain.
func sidWithRID(sid []byte, rid uint32) ([]byte, error) {
	if len(sid) < 12 || int(sid[1])*4+8 != len(sid) || sid[1] == 0 {
		return nil, errors.New("malformed objectSid")
	}
	out := append([]byte{}, sid...)
	binary.LittleEndian.PutUint32(out[len(out)-4:], rid)
	return out, nil
}

// sidString formats a binary SID as S-1-5-21-….
func sidString(sid []byte) string {
	if len(sid) < 8 || int(sid[1])*4+8 != len(sid) {
		return ""
	}
	var auth uint64
	for _, b := range sid[2:8] {
		auth = auth<<8 | uint64(b)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "S-%d-%d", sid[0], auth)
	for i := 0; i < int(sid[1]); i++ {
		fmt.Fprintf(&sb, "-%d", binary.LittleEndian.Uint32(sid[8+4*i:]))
	}
	return sb.String()
}
