package secret

import (
	"crypto/subtle"
	"fmt"

	"go.uber.org/zap/zapcore"
)

// Redacted is what every printing path shows instead of a secret's contents.
const Redacted = "[REDACTED]"

// Secret is a byte string that is redacted wherever it is printed. The zero
// value is an empty secret. A Secret must not be copied after first use if
// Destroy is to wipe every copy: pass *Secret around.
type Secret struct {
	b []byte
}

// New copies b into a new Secret; the caller may wipe its own copy.
func New(b []byte) *Secret {
	c := make([]byte, len(b))
	copy(c, b)
	return &Secret{b: c}
}

// FromString makes a Secret from s. Go strings cannot be wiped, so prefer New
// where the source is a byte slice.
func FromString(s string) *Secret {
	return &Secret{b: []byte(s)}
}

// Bytes returns the secret's bytes. The slice aliases the secret and is
// wiped by Destroy: callers must not keep it.
func (s *Secret) Bytes() []byte {
	if s == nil {
		return nil
	}
	return s.b
}

// Reveal returns the contents as a string, for APIs that only take strings
// (LDAP bind, SDK connection strings). The copy cannot be wiped, so call it
// as late as possible.
func (s *Secret) Reveal() string {
	if s == nil {
		return ""
	}
	return string(s.b)
}

// Len returns the length in bytes.
func (s *Secret) Len() int {
	if s == nil {
		return 0
	}
	return len(s.b)
}

// IsEmpty reports whether the secret holds no bytes.
func (s *Secret) IsEmpty() bool { return s.Len() == 0 }

// Equal reports whether two secrets hold the same bytes, in constant time.
func (s *Secret) Equal(o *Secret) bool {
	return subtle.ConstantTimeCompare(s.Bytes(), o.Bytes()) == 1
}

// Destroy overwrites the secret's bytes with zeros and empties it.
func (s *Secret) Destroy() {
	if s == nil {
		return
	}
	clear(s.b)
	s.b = nil
}

// String implements fmt.Stringer.
func (s *Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v is redacted too.
func (s *Secret) GoString() string { return Redacted }

// Format implements fmt.Formatter: every verb, including %x and %q, prints
// the redaction marker.
func (s *Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON implements json.Marshaler.
func (s *Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML and others).
func (s *Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalLogObject implements zapcore.ObjectMarshaler.
func (s *Secret) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("value", Redacted)
	return nil
}
