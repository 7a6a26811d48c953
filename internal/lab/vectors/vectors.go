// Package vectors reads shared/testvectors/protocol-v1.json, the protocol
// vectors an independent implementation of the spec made, for the tests
// that check the agent against them (the protocol package's and the
// end-to-end suite's).
package vectors

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// File is the layout of protocol-v1.json.
type File struct {
	AgentDecryptionKeys []struct {
		DeriveKeyPairIKM string          `json:"deriveKeyPairIKM"`
		PrivateKey       string          `json:"privateKey"`
		Public           json.RawMessage `json:"public"`
		Suite            string          `json:"suite"`
	} `json:"agentDecryptionKeys"`
	AgentSigningKey Ed25519   `json:"agentSigningKey"`
	TrustedSender   Ed25519   `json:"trustedSender"`
	UntrustedSender Ed25519   `json:"untrustedSender"`
	Now             time.Time `json:"now"`
	Requests        []struct {
		Name                  string         `json:"name"`
		MessageID             string         `json:"messageId"`
		ContentType           string         `json:"contentType"`
		SessionID             string         `json:"sessionId"`
		ApplicationProperties map[string]any `json:"applicationProperties"`
		Body                  string         `json:"body"`
		Expect                struct {
			Outcome   string `json:"outcome"`
			Reason    string `json:"reason"`
			Code      string `json:"code"`
			Settle    string `json:"settle"`
			Op        string `json:"op"`
			TargetKey string `json:"targetKey"`
			Options   *struct {
				Unlock     bool `json:"unlock"`
				MustChange bool `json:"mustChange"`
			} `json:"options"`
			Secret *struct {
				New string  `json:"new"`
				Old *string `json:"old"`
			} `json:"secret"`
		} `json:"expect"`
	} `json:"requests"`
	Result struct {
		ApplicationProperties map[string]any `json:"applicationProperties"`
		Body                  string         `json:"body"`
		ContentType           string         `json:"contentType"`
	} `json:"result"`
}

// Ed25519 is a signing key of the vectors, its kid and both halves as PEM.
type Ed25519 struct {
	KID           string `json:"kid"`
	PrivateKeyPEM string `json:"privateKeyPEM"`
	PublicKeyPEM  string `json:"publicKeyPEM"`
}

// RelPath is where the vectors lie below the folder that holds the
// checkout.
var RelPath = filepath.Join("shared", "testvectors", "protocol-v1.json")

// Find returns the vectors in the nearest of dir and its parents that
// holds RelPath, or "" when none does.
func Find(dir string) string {
	for {
		p := filepath.Join(dir, RelPath)
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Read parses the vectors at path.
func Read(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read the protocol vectors: %w", err)
	}
	var v File
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return &v, nil
}
