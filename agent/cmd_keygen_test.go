package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wbagent/internal/protocol"
)

func TestKeygenAgent(t *testing.T) {
	for _, suite := range []string{"", "x-wing", "x25519"} {
		dir := filepath.Join(t.TempDir(), "keys")
		args := []string{"keygen", "--dir", dir}
		if suite != "" {
			args = append(args, "--suite", suite)
		}
		out, errOut, code := runCLI(t, "", nil, args...)
		if code != 0 {
			t.Fatalf("keygen %v: %d %s", args, code, errOut)
		}
		hk, sk := loadAgentKeys(t, dir)
		want := protocol.SuiteXWing
		if suite == "x25519" {
			want = protocol.SuiteX25519
		}
		if hk.Suite() != want {
			t.Errorf("suite %s, want %s", hk.Suite(), want)
		}
		if !strings.Contains(out, hk.KID()) || !strings.Contains(out, sk.KID()) {
			t.Errorf("output does not print both kids:\n%s", out)
		}
		if _, err := protocol.LoadAgentPublicKey(filepath.Join(dir, protocol.AgentHPKEPubFile)); err != nil {
			t.Error(err)
		}
		if _, err := protocol.LoadPublicKey(filepath.Join(dir, protocol.AgentSignPubFile)); err != nil {
			t.Error(err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, protocol.AgentSignKeyFile))
		_, errOut, code = runCLI(t, "", nil, args...)
		if code != exitError || !strings.Contains(errOut, "already exists") {
			t.Errorf("second keygen: %d %s", code, errOut)
		}
		after, _ := os.ReadFile(filepath.Join(dir, protocol.AgentSignKeyFile))
		if string(before) != string(after) {
			t.Error("keygen overwrote a key")
		}
	}
}

func TestKeygenSender(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := runCLI(t, "", nil, "keygen", "--sender", "--dir", dir)
	if code != 0 {
		t.Fatalf("%d %s", code, errOut)
	}
	pub, err := protocol.LoadPublicKey(filepath.Join(dir, protocol.SenderPubFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, protocol.KID(pub)) {
		t.Errorf("kid %s not printed:\n%s", protocol.KID(pub), out)
	}
	if _, err := protocol.LoadSigningKey(filepath.Join(dir, protocol.SenderKeyFile)); err != nil {
		t.Error(err)
	}
	if _, errOut, code := runCLI(t, "", nil, "keygen", "--sender", "--dir", dir); code != exitError || !strings.Contains(errOut, "already exists") {
		t.Errorf("second sender keygen: %d %s", code, errOut)
	}
}

func TestKeygenUsage(t *testing.T) {
	for _, args := range [][]string{
		{"keygen"},
		{"keygen", "--dir", t.TempDir(), "--suite", "rsa"},
		{"keygen", "--sender", "--suite", "x25519", "--dir", t.TempDir()},
	} {
		if _, errOut, code := runCLI(t, "", nil, args...); code != exitUsage {
			t.Errorf("%v: %d %s", args, code, errOut)
		}
	}
}

// loadAgentKeys loads the private keys keygen wrote into dir: the
// decryption key and the result signing key.
func loadAgentKeys(t *testing.T, dir string) (*protocol.DecryptionKey, *protocol.SigningKey) {
	t.Helper()
	hk, err := protocol.LoadDecryptionKey(filepath.Join(dir, protocol.AgentHPKEKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	sk, err := protocol.LoadSigningKey(filepath.Join(dir, protocol.AgentSignKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return hk, sk
}
