//go:build unix

package protocol

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wbagent/internal/fileperm"
)

// What the agent loads at start (run) refuses the wrong kind of key
// without suggesting chmod, and a private key another user owns with the
// chown that fixes it.
func TestKeyFileKindAndOwner(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteAgentKeys(dir, SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSenderKeys(dir); err != nil {
		t.Fatal(err)
	}
	var wk *WrongKindError
	if _, err := LoadDecryptionKey(filepath.Join(dir, AgentHPKEPubFile)); !errors.As(err, &wk) || wk.Holds != "a public key" || strings.Contains(err.Error(), "chmod") {
		t.Errorf("decryption key from the public document: %v", err)
	}
	if _, err := LoadSigningKey(filepath.Join(dir, AgentSignPubFile)); !errors.As(err, &wk) || wk.Holds != "a public key" {
		t.Errorf("signing key from the public key: %v", err)
	}
	if _, err := LoadPublicKey(filepath.Join(dir, SenderKeyFile)); !errors.As(err, &wk) || wk.Holds != "a private key" {
		t.Errorf("sender public key from the private key: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("giving a file to another user needs root")
	}
	key := filepath.Join(dir, AgentSignKeyFile)
	if err := os.Chown(key, 65534, -1); err != nil {
		t.Fatal(err)
	}
	var fe *fileperm.Error
	if _, err := LoadSigningKey(key); !errors.As(err, &fe) || fe.Fix != "chown root "+key {
		t.Errorf("signing key owned by nobody: %v", err)
	}
}
