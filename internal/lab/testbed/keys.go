package testbed

import (
	"crypto/ed25519"
	"fmt"
	"path/filepath"

	"wbagent/internal/protocol"
)

// Keys is a key set on disk, as `wbagent keygen` writes it: the agent's
// (decryption key, result signing key and their public halves) in
// Dir/agent, and one trusted sender's in Dir/sender, loaded for the
// sender side.
type Keys struct {
	Dir string
	// Agent side files (the agent's config points at these).
	AgentHPKEKey, AgentSignKey string
	// Files handed to senders.
	AgentHPKEPub, AgentSignPub string
	// The sender's key pair.
	SenderKey, SenderPub string

	// Signer signs requests; Agent seals secrets to the agent; ResultKey
	// checks results.
	Signer    *protocol.SigningKey
	Agent     *protocol.AgentPublicKey
	ResultKey ed25519.PublicKey
}

// NewKeys writes a fresh agent key set (suite x25519 unless given) and a
// sender key pair below dir and loads what a sender needs.
func NewKeys(dir string, suite ...protocol.Suite) (*Keys, error) {
	s := protocol.SuiteX25519
	if len(suite) > 0 {
		s = suite[0]
	}
	agentDir, senderDir := filepath.Join(dir, "agent"), filepath.Join(dir, "sender")
	if _, err := protocol.WriteAgentKeys(agentDir, s); err != nil {
		return nil, fmt.Errorf("agent keys: %w", err)
	}
	if _, err := protocol.WriteSenderKeys(senderDir); err != nil {
		return nil, fmt.Errorf("sender keys: %w", err)
	}
	return LoadKeys(dir)
}

// LoadKeys loads a key set NewKeys (or `wbagent keygen` into DIR/agent and
// `wbagent keygen --sender` into DIR/sender) wrote.
func LoadKeys(dir string) (*Keys, error) {
	agentDir, senderDir := filepath.Join(dir, "agent"), filepath.Join(dir, "sender")
	k := &Keys{
		Dir:          dir,
		AgentHPKEKey: filepath.Join(agentDir, protocol.AgentHPKEKeyFile),
		AgentSignKey: filepath.Join(agentDir, protocol.AgentSignKeyFile),
		AgentHPKEPub: filepath.Join(agentDir, protocol.AgentHPKEPubFile),
		AgentSignPub: filepath.Join(agentDir, protocol.AgentSignPubFile),
		SenderKey:    filepath.Join(senderDir, protocol.SenderKeyFile),
		SenderPub:    filepath.Join(senderDir, protocol.SenderPubFile),
	}
	var err error
	if k.Signer, err = protocol.LoadSigningKey(k.SenderKey); err != nil {
		return nil, err
	}
	if k.Agent, err = protocol.LoadAgentPublicKey(k.AgentHPKEPub); err != nil {
		return nil, err
	}
	if k.ResultKey, err = protocol.LoadPublicKey(k.AgentSignPub); err != nil {
		return nil, err
	}
	return k, nil
}
