package protocol

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"wbagent/internal/fileperm"
)

// Key file names written by `wbagent keygen`.
const (
	AgentHPKEKeyFile    = "agent-hpke.key"
	AgentHPKEPubFile    = "agent-hpke.pub.json"
	AgentSignKeyFile    = "agent-sign.key"
	AgentSignPubFile    = "agent-sign.pub"
	SenderKeyFile       = "sender.key"
	SenderPubFile       = "sender.pub"
	hpkePrivatePEMType  = "WBAGENT HPKE PRIVATE KEY"
	pkcs8PEMType        = "PRIVATE KEY"
	pkixPEMType         = "PUBLIC KEY"
	privateKeyFileMode  = 0o600
	publicKeyFileMode   = 0o644
	keyDirMode          = 0o700
	pemHeaderSuite      = "Suite"
	pemHeaderKID        = "Kid"
	maxKeyFileSizeBytes = 1 << 20
)

// MarshalPEM writes the private key as a PEM block of type
// "WBAGENT HPKE PRIVATE KEY" holding the RFC 9180 SerializePrivateKey bytes
// (32 bytes for either suite), with the suite and kid as headers. There is no
// standard PKCS#8 form for X-Wing yet; the suite header lets one file
// format hold both suites.
func (k *DecryptionKey) MarshalPEM() ([]byte, error) {
	raw, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("encode decryption key: %w", err)
	}
	defer clear(raw)
	return pem.EncodeToMemory(&pem.Block{
		Type:    hpkePrivatePEMType,
		Headers: map[string]string{pemHeaderSuite: string(k.suite), pemHeaderKID: k.kid},
		Bytes:   raw,
	}), nil
}

// ParseDecryptionKeyPEM reads what MarshalPEM writes.
func ParseDecryptionKeyPEM(data []byte) (*DecryptionKey, error) {
	block, err := onePEMBlock(data, hpkePrivatePEMType, "make the key with wbagent keygen")
	if err != nil {
		return nil, err
	}
	defer clear(block.Bytes)
	suite, err := ParseSuite(block.Headers[pemHeaderSuite])
	if err != nil {
		return nil, fmt.Errorf("PEM header %s: %w", pemHeaderSuite, err)
	}
	k, err := NewDecryptionKey(suite, block.Bytes)
	if err != nil {
		return nil, err
	}
	if kid, ok := block.Headers[pemHeaderKID]; ok && kid != k.kid {
		return nil, fmt.Errorf("PEM header %s is %q but the key's kid is %s; the file was edited", pemHeaderKID, truncate(kid), k.kid)
	}
	return k, nil
}

// onePEMBlock returns the one PEM block of type typ that data holds: a
// key file holds one key, and a second block could be a different key
// than the one checked. hint says how to make a right one. On an error
// the block's bytes (perhaps a private key) are wiped.
func onePEMBlock(data []byte, typ, hint string) (*pem.Block, error) {
	block, rest := pem.Decode(data)
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("no %q PEM block; %s", typ, hint)
	}
	if p, _ := pem.Decode(rest); p != nil {
		clear(block.Bytes)
		return nil, errors.New("more than one PEM block; a key file holds one key")
	}
	return block, nil
}

// MarshalPEM writes the key as PKCS#8 "PRIVATE KEY" PEM, the form
// `openssl genpkey -algorithm ed25519` writes.
func (k *SigningKey) MarshalPEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.priv)
	if err != nil {
		return nil, fmt.Errorf("encode signing key: %w", err)
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: pkcs8PEMType, Bytes: der}), nil
}

// ParseSigningKeyPEM reads an Ed25519 private key in PKCS#8 PEM.
func ParseSigningKeyPEM(data []byte) (*SigningKey, error) {
	block, err := onePEMBlock(data, pkcs8PEMType, "use an Ed25519 key in PKCS#8 form (openssl genpkey -algorithm ed25519, or wbagent keygen)")
	if err != nil {
		return nil, err
	}
	defer clear(block.Bytes)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKCS#8 private key: %w", err)
	}
	priv, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not Ed25519; protocol v1 signs with Ed25519 only", key)
	}
	return NewSigningKey(priv), nil
}

// MarshalPublicKeyPEM writes an Ed25519 public key as PKIX "PUBLIC KEY" PEM.
func MarshalPublicKeyPEM(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pkixPEMType, Bytes: der}), nil
}

// ParsePublicKeyPEM reads an Ed25519 public key in PKIX PEM, the form
// `openssl pkey -pubout` writes.
func ParsePublicKeyPEM(data []byte) (ed25519.PublicKey, error) {
	block, err := onePEMBlock(data, pkixPEMType, "use an Ed25519 public key in PKIX form (openssl pkey -pubout)")
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("not a PKIX public key: %w", err)
	}
	pub, ok := key.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("the key is %T, not Ed25519; protocol v1 signs with Ed25519 only", key)
	}
	return pub, nil
}

// LoadDecryptionKey reads an agent HPKE private key file.
func LoadDecryptionKey(path string) (*DecryptionKey, error) {
	return loadKey(path, true, "decryption key ", ParseDecryptionKeyPEM)
}

// LoadSigningKey reads an Ed25519 private key file (PKCS#8 PEM).
func LoadSigningKey(path string) (*SigningKey, error) {
	return loadKey(path, true, "signing key ", ParseSigningKeyPEM)
}

// LoadPublicKey reads an Ed25519 public key file (PKIX PEM): a trusted
// sender's key, or the agent signing key a sender checks results with.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	return loadKey(path, false, "public key ", ParsePublicKeyPEM)
}

// LoadAgentPublicKey reads the agent's HPKE public key document (§2).
func LoadAgentPublicKey(path string) (*AgentPublicKey, error) {
	return loadKey(path, false, "", ParseAgentPublicKey)
}

// loadKey reads a key file (see readFile: a private key must be the
// agent's alone, and neither kind may stand in for the other) and parses
// it, naming the file in a parse error. A private key's bytes are wiped
// once parsed: the parsed key is the only copy kept.
func loadKey[K any](path string, private bool, what string, parse func([]byte) (K, error)) (K, error) {
	var zero K
	data, err := readFile(path, private)
	if err != nil {
		return zero, err
	}
	if private {
		defer clear(data)
	}
	k, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("load %s%s: %w", what, path, err)
	}
	return k, nil
}

// WrongKindError is a public key file given where a private key belongs,
// or the reverse: no chmod or keygen fixes that, the path is wrong.
type WrongKindError struct {
	Path string
	// Holds is what the file holds: "a public key" or "a private key".
	Holds string
	// Want is what belongs there.
	Want string
}

func (e *WrongKindError) Error() string {
	return fmt.Sprintf("key file %s holds %s, but %s belongs here", e.Path, e.Holds, e.Want)
}

// keyKind tells what a key file holds from its first PEM block or JSON
// document: "private", "public", or "" when it is neither.
func keyKind(data []byte) string {
	if block, _ := pem.Decode(data); block != nil {
		switch block.Type {
		case hpkePrivatePEMType, pkcs8PEMType, "EC PRIVATE KEY", "RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
			return "private"
		case pkixPEMType:
			return "public"
		}
		return ""
	}
	var doc map[string]any
	if json.Unmarshal(data, &doc) == nil && doc["kid"] != nil {
		return "public" // an agent public key document (agent-hpke.pub.json)
	}
	return ""
}

// readFile reads a key file, checking the kind of key it holds and, for a
// private key, the mode and owner of the file it opened (not of whatever
// the path names a moment earlier).
func readFile(path string, private bool) ([]byte, error) {
	data, st, err := fileperm.ReadSmall("key file", path, maxKeyFileSizeBytes)
	if err != nil {
		return nil, err
	}
	switch kind := keyKind(data); {
	case private && kind == "public":
		clear(data)
		return nil, &WrongKindError{Path: path, Holds: "a public key", Want: "the private key (agent-hpke.key or agent-sign.key from wbagent keygen)"}
	case !private && kind == "private":
		clear(data)
		return nil, &WrongKindError{Path: path, Holds: "a private key", Want: "a public key (a sender's sender.pub, or agent-sign.pub); a private key given here is exposed"}
	}
	if private {
		if err := fileperm.CheckPrivate("private key file", path, st); err != nil {
			clear(data)
			return nil, err
		}
	}
	return data, nil
}

// CheckPrivateKeyMode returns an error naming the file and the fix when a
// private key file grants any access to group or others, or is owned by
// another user than the one running the agent.
func CheckPrivateKeyMode(path string) error {
	return fileperm.CheckPrivatePath("private key file", path)
}

// AgentKeyIDs are the kids of a key set WriteAgentKeys made.
type AgentKeyIDs struct {
	HPKE    string
	Signing string
}

// WriteAgentKeys creates the agent's key set in dir: agent-hpke.key and
// agent-sign.key (mode 0600), agent-hpke.pub.json and agent-sign.pub (for
// senders). It refuses to overwrite any existing file.
func WriteAgentKeys(dir string, suite Suite) (AgentKeyIDs, error) {
	names := []string{AgentHPKEKeyFile, AgentHPKEPubFile, AgentSignKeyFile, AgentSignPubFile}
	if err := prepareKeyDir(dir, names); err != nil {
		return AgentKeyIDs{}, err
	}
	hk, err := GenerateDecryptionKey(suite)
	if err != nil {
		return AgentKeyIDs{}, err
	}
	sk, err := GenerateSigningKey()
	if err != nil {
		return AgentKeyIDs{}, err
	}
	defer sk.Destroy()
	hpkePEM, err := hk.MarshalPEM()
	if err != nil {
		return AgentKeyIDs{}, err
	}
	defer clear(hpkePEM)
	hpkePub, err := json.MarshalIndent(hk.Public(), "", "  ")
	if err != nil {
		return AgentKeyIDs{}, fmt.Errorf("encode agent public key: %w", err)
	}
	signPEM, err := sk.MarshalPEM()
	if err != nil {
		return AgentKeyIDs{}, err
	}
	defer clear(signPEM)
	signPub, err := MarshalPublicKeyPEM(sk.Public())
	if err != nil {
		return AgentKeyIDs{}, err
	}
	files := []keyFile{
		{AgentHPKEKeyFile, hpkePEM, privateKeyFileMode},
		{AgentHPKEPubFile, append(hpkePub, '\n'), publicKeyFileMode},
		{AgentSignKeyFile, signPEM, privateKeyFileMode},
		{AgentSignPubFile, signPub, publicKeyFileMode},
	}
	if err := writeKeyFiles(dir, files); err != nil {
		return AgentKeyIDs{}, err
	}
	return AgentKeyIDs{HPKE: hk.KID(), Signing: sk.KID()}, nil
}

// WriteSenderKeys creates a sender's key pair in dir: sender.key (0600) and
// sender.pub, the file the agent's config lists as a trusted sender. It
// returns the kid and refuses to overwrite either file.
func WriteSenderKeys(dir string) (string, error) {
	if err := prepareKeyDir(dir, []string{SenderKeyFile, SenderPubFile}); err != nil {
		return "", err
	}
	sk, err := GenerateSigningKey()
	if err != nil {
		return "", err
	}
	defer sk.Destroy()
	priv, err := sk.MarshalPEM()
	if err != nil {
		return "", err
	}
	defer clear(priv)
	pub, err := MarshalPublicKeyPEM(sk.Public())
	if err != nil {
		return "", err
	}
	if err := writeKeyFiles(dir, []keyFile{{SenderKeyFile, priv, privateKeyFileMode}, {SenderPubFile, pub, publicKeyFileMode}}); err != nil {
		return "", err
	}
	return sk.KID(), nil
}

type keyFile struct {
	name string
	data []byte
	mode fs.FileMode
}

// prepareKeyDir creates dir (0700) and fails if any of names exists, before
// anything is written, so a refused keygen leaves no half key set.
func prepareKeyDir(dir string, names []string) error {
	if err := os.MkdirAll(dir, keyDirMode); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("key file %s already exists; keys are never overwritten: move it away or choose another --dir", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("check key file: %w", err)
		}
	}
	return nil
}

// writeKeyFiles writes each file with O_EXCL and fsyncs it, so an existing
// key is never replaced even by a concurrent keygen.
func writeKeyFiles(dir string, files []keyFile) error {
	for _, kf := range files {
		p := filepath.Join(dir, kf.name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, kf.mode)
		if err != nil {
			return fmt.Errorf("write key file: %w", err)
		}
		_, err = f.Write(kf.data)
		if err == nil {
			err = f.Chmod(kf.mode) // the umask may have narrowed the mode; set it exactly
		}
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("write key file %s: %w", p, err)
		}
	}
	return nil
}
