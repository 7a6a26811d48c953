package protocol

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
)

// Suite names an HPKE suite of §2. Both use HKDF-SHA256 and AES-256-GCM.
type Suite string

// The two suites of protocol v1.
const (
	// SuiteXWing is the default: KEM 0x647A, MLKEM768-X25519 (X-Wing),
	// resistant to a future quantum computer.
	SuiteXWing Suite = "x-wing"
	// SuiteX25519 is KEM 0x0020, DHKEM(X25519, HKDF-SHA256), for senders
	// whose HPKE library has no X-Wing yet.
	SuiteX25519 Suite = "x25519"
)

// ParseSuite returns the suite named s.
func ParseSuite(s string) (Suite, error) {
	switch Suite(s) {
	case SuiteXWing, SuiteX25519:
		return Suite(s), nil
	}
	return "", fmt.Errorf("unknown HPKE suite %q: use %q or %q", truncate(s), SuiteXWing, SuiteX25519)
}

// kem returns the suite's KEM.
func (s Suite) kem() (hpke.KEM, error) {
	switch s {
	case SuiteXWing:
		return hpke.MLKEM768X25519(), nil
	case SuiteX25519:
		return hpke.DHKEM(ecdh.X25519()), nil
	}
	return nil, fmt.Errorf("unknown HPKE suite %q", truncate(string(s)))
}

// The KDF and AEAD are the same for both suites.
var (
	suiteKDF  = hpke.HKDFSHA256()
	suiteAEAD = hpke.AES256GCM()
)

// KID returns the key id of §2: lowercase hex of the first 8 bytes of
// SHA-256 over the raw public key (SerializePublicKey for HPKE, the 32
// bytes for Ed25519).
func KID(rawPublicKey []byte) string {
	sum := sha256.Sum256(rawPublicKey)
	return hex.EncodeToString(sum[:8])
}

// DecryptionKey is an agent HPKE private key. Its secret half stays inside
// crypto/hpke; it never prints.
type DecryptionKey struct {
	suite Suite
	kid   string
	priv  hpke.PrivateKey
}

// GenerateDecryptionKey makes a new agent decryption key of suite.
func GenerateDecryptionKey(suite Suite) (*DecryptionKey, error) {
	return makeDecryptionKey(suite, "generate decryption key", hpke.KEM.GenerateKey)
}

// NewDecryptionKey makes a decryption key from the SerializePrivateKey bytes
// of RFC 9180 (for x-wing the 32-byte seed, for x25519 the 32-byte scalar),
// the form key files and the test vectors hold.
func NewDecryptionKey(suite Suite, serialized []byte) (*DecryptionKey, error) {
	return makeDecryptionKey(suite, "decryption key", func(kem hpke.KEM) (hpke.PrivateKey, error) {
		priv, err := kem.NewPrivateKey(serialized)
		if err != nil {
			return nil, fmt.Errorf("not a %s private key: %w", suite, err)
		}
		return priv, nil
	})
}

// DeriveDecryptionKey derives a key pair from input keying material with
// RFC 9180 DeriveKeyPair: deterministic keys for tests and vectors.
func DeriveDecryptionKey(suite Suite, ikm []byte) (*DecryptionKey, error) {
	return makeDecryptionKey(suite, "derive decryption key", func(kem hpke.KEM) (hpke.PrivateKey, error) {
		return kem.DeriveKeyPair(ikm)
	})
}

// makeDecryptionKey makes a key of suite with mk, whichever way it comes
// to be; what begins its errors.
func makeDecryptionKey(suite Suite, what string, mk func(hpke.KEM) (hpke.PrivateKey, error)) (*DecryptionKey, error) {
	kem, err := suite.kem()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	priv, err := mk(kem)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &DecryptionKey{suite: suite, kid: KID(priv.PublicKey().Bytes()), priv: priv}, nil
}

// KID returns the key's id, which requests name in secret.kid.
func (k *DecryptionKey) KID() string { return k.kid }

// Suite returns the key's HPKE suite.
func (k *DecryptionKey) Suite() Suite { return k.suite }

// Public returns the public document handed to senders.
func (k *DecryptionKey) Public() *AgentPublicKey {
	return &AgentPublicKey{suite: k.suite, kid: k.kid, pub: k.priv.PublicKey()}
}

// String keeps the private key out of logs.
func (k *DecryptionKey) String() string {
	return fmt.Sprintf("hpke %s decryption key %s [REDACTED]", k.suite, k.kid)
}

// AgentPublicKey is the agent's HPKE public key as senders hold it: the JSON
// document {"kid", "suite", "publicKey"} of §2.
type AgentPublicKey struct {
	suite Suite
	kid   string
	pub   hpke.PublicKey
}

// KID returns the key's id.
func (k *AgentPublicKey) KID() string { return k.kid }

// Suite returns the key's HPKE suite.
func (k *AgentPublicKey) Suite() Suite { return k.suite }

// agentPublicWire is the JSON document of §2.
type agentPublicWire struct {
	KID       string `json:"kid"`
	Suite     Suite  `json:"suite"`
	PublicKey string `json:"publicKey"`
}

// MarshalJSON writes the document of §2.
func (k *AgentPublicKey) MarshalJSON() ([]byte, error) {
	return json.Marshal(agentPublicWire{KID: k.kid, Suite: k.suite, PublicKey: base64.RawURLEncoding.EncodeToString(k.pub.Bytes())})
}

// ParseAgentPublicKey reads the document of §2 strictly and checks that its
// kid is the kid of its key, so a mislabelled file is caught before use.
func ParseAgentPublicKey(doc []byte) (*AgentPublicKey, error) {
	v, err := parseJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("agent public key: %w", err)
	}
	if v.kind != jObject {
		return nil, errors.New("agent public key: not a JSON object")
	}
	var w agentPublicWire
	for i := range v.members {
		m := &v.members[i]
		var s string
		if s, err = m.value.text(m.name); err != nil {
			return nil, fmt.Errorf("agent public key: %w", err)
		}
		switch m.name {
		case "kid":
			w.KID = s
		case "suite":
			w.Suite = Suite(s)
		case "publicKey":
			w.PublicKey = s
		default:
			return nil, fmt.Errorf("agent public key: unknown member %s", quoteName(m.name))
		}
	}
	kem, err := w.Suite.kem()
	if err != nil {
		return nil, fmt.Errorf("agent public key: %w", err)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(w.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("agent public key: publicKey is not base64url without padding: %w", err)
	}
	pub, err := kem.NewPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("agent public key: publicKey is not a %s public key: %w", w.Suite, err)
	}
	if kid := KID(raw); w.KID != kid {
		return nil, fmt.Errorf("agent public key: kid %q does not match the key (its kid is %s)", truncate(w.KID), kid)
	}
	return &AgentPublicKey{suite: w.Suite, kid: w.KID, pub: pub}, nil
}

// SigningKey is an Ed25519 private key that signs requests (a sender) or
// results (the agent). It never prints; Destroy wipes it.
type SigningKey struct {
	priv ed25519.PrivateKey
	kid  string
}

// GenerateSigningKey makes a new Ed25519 signing key.
func GenerateSigningKey() (*SigningKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return NewSigningKey(priv), nil
}

// NewSigningKey wraps an Ed25519 private key; the caller should not keep
// its own copy.
func NewSigningKey(priv ed25519.PrivateKey) *SigningKey {
	pub := priv.Public().(ed25519.PublicKey)
	return &SigningKey{priv: priv, kid: KID(pub)}
}

// KID returns the kid of the key's public half.
func (k *SigningKey) KID() string { return k.kid }

// Public returns the public half, to hand out as a PEM PUBLIC KEY.
func (k *SigningKey) Public() ed25519.PublicKey {
	return k.priv.Public().(ed25519.PublicKey)
}

// Sign returns base64url(Ed25519(key, body)), the wb-sig of §5. Tests use
// it to sign bodies they craft.
func (k *SigningKey) Sign(body []byte) string {
	return base64.RawURLEncoding.EncodeToString(ed25519.Sign(k.priv, body))
}

// Destroy wipes the private key; the key cannot sign afterwards.
func (k *SigningKey) Destroy() {
	if k != nil {
		clear(k.priv)
	}
}

// String keeps the private key out of logs.
func (k *SigningKey) String() string { return "ed25519 signing key " + k.kid + " [REDACTED]" }
