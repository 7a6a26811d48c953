package protocol

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"wbagent/internal/wire"
)

// mustLoad loads the key file at path with load, for a test that builds on
// the key rather than checks the loading.
func mustLoad[K any](t *testing.T, load func(string) (K, error), path string) K {
	t.Helper()
	k, err := load(path)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestWriteAgentKeys(t *testing.T) {
	for _, suite := range []Suite{SuiteXWing, SuiteX25519} {
		dir := filepath.Join(t.TempDir(), "keys")
		ids, err := WriteAgentKeys(dir, suite)
		if err != nil {
			t.Fatal(err)
		}
		hk := mustLoad(t, LoadDecryptionKey, filepath.Join(dir, AgentHPKEKeyFile))
		pub := mustLoad(t, LoadAgentPublicKey, filepath.Join(dir, AgentHPKEPubFile))
		sk := mustLoad(t, LoadSigningKey, filepath.Join(dir, AgentSignKeyFile))
		spub := mustLoad(t, LoadPublicKey, filepath.Join(dir, AgentSignPubFile))
		if hk.KID() != ids.HPKE || pub.KID() != ids.HPKE || hk.Suite() != suite || pub.Suite() != suite {
			t.Errorf("%s: hpke kids %s %s, want %s", suite, hk.KID(), pub.KID(), ids.HPKE)
		}
		if sk.KID() != ids.Signing || KID(spub) != ids.Signing {
			t.Errorf("%s: signing kids %s %s, want %s", suite, sk.KID(), KID(spub), ids.Signing)
		}
		if runtime.GOOS != "windows" {
			for name, want := range map[string]os.FileMode{AgentHPKEKeyFile: 0o600, AgentSignKeyFile: 0o600, AgentHPKEPubFile: 0o644, AgentSignPubFile: 0o644} {
				st, _ := os.Stat(filepath.Join(dir, name))
				if st.Mode().Perm() != want {
					t.Errorf("%s mode %v, want %v", name, st.Mode().Perm(), want)
				}
			}
		}
		// The pair works end to end: a request sealed to the public file
		// opens with the private file.
		sender, _ := GenerateSigningKey()
		o, err := NewOpener([]*DecryptionKey{hk}, []ed25519.PublicKey{sender.Public()}, testLimits)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		m, err := BuildRequest(sender, pub, RequestSpec{Op: wire.OpReset, Target: Target{UserPrincipalName: "a@b"}, Actor: Actor{ID: "x", Kind: ActorSystem}, IssuedAt: now, ExpiresAt: now.Add(time.Minute), New: secretOf("pw")})
		if err != nil {
			t.Fatal(err)
		}
		req, err := o.Open(m, now)
		if err != nil {
			t.Fatal(err)
		}
		req.Destroy()
		// Never overwrite: a second run fails and leaves the files alone.
		before, _ := os.ReadFile(filepath.Join(dir, AgentHPKEKeyFile))
		if _, err := WriteAgentKeys(dir, suite); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("second keygen: %v", err)
		}
		after, _ := os.ReadFile(filepath.Join(dir, AgentHPKEKeyFile))
		if string(before) != string(after) {
			t.Error("existing key overwritten")
		}
	}
}

func TestWriteSenderKeysRefusesPartial(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, SenderPubFile), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSenderKeys(dir); err == nil {
		t.Fatal("wrote over an existing sender.pub")
	}
	if _, err := os.Stat(filepath.Join(dir, SenderKeyFile)); !os.IsNotExist(err) {
		t.Error("a refused keygen left a private key behind")
	}
}

func TestPrivateKeyModeRefused(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows key files are protected by ACLs, not mode bits")
	}
	if os.Geteuid() == 0 {
		t.Log("running as root: the mode check still applies, as it does for the agent")
	}
	dir := t.TempDir()
	kid, err := WriteSenderKeys(dir)
	if err != nil || !wire.IsKID(kid) {
		t.Fatal(kid, err)
	}
	p := filepath.Join(dir, SenderKeyFile)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o601} {
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		_, err := LoadSigningKey(p)
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "chmod 600 "+p) {
			t.Errorf("mode %o: %v", mode, err)
		}
	}
	if err := os.Chmod(p, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigningKey(p); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
}

// TestOpenSSLSenderKey: a key made by `openssl genpkey -algorithm ed25519`
// works as a sender key, and its `openssl pkey -pubout` as the trusted key.
func TestOpenSSLSenderKey(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	dir := t.TempDir()
	priv := filepath.Join(dir, "sender.key")
	pubPath := filepath.Join(dir, "sender.pub")
	if out, err := exec.Command(openssl, "genpkey", "-algorithm", "ed25519", "-out", priv).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v\n%s", err, out)
	}
	if out, err := exec.Command(openssl, "pkey", "-in", priv, "-pubout", "-out", pubPath).CombinedOutput(); err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	if err := os.Chmod(priv, 0o600); err != nil {
		t.Fatal(err)
	}
	sk := mustLoad(t, LoadSigningKey, priv)
	pub := mustLoad(t, LoadPublicKey, pubPath)
	if sk.KID() != KID(pub) {
		t.Fatalf("kid of private %s, of public %s", sk.KID(), KID(pub))
	}
	agent, _ := GenerateDecryptionKey(SuiteXWing)
	o, err := NewOpener([]*DecryptionKey{agent}, []ed25519.PublicKey{pub}, testLimits)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m, err := BuildRequest(sk, agent.Public(), RequestSpec{Op: wire.OpReset, Target: Target{SAMAccountName: "bob"}, Actor: Actor{ID: "x", Kind: ActorAdmin}, IssuedAt: now, ExpiresAt: now.Add(time.Minute), New: secretOf("pw")})
	if err != nil {
		t.Fatal(err)
	}
	req, err := o.Open(m, now)
	if err != nil {
		t.Fatalf("openssl-made sender key: %v", err)
	}
	req.Destroy()
	// The openssl key also verifies with openssl's own signature check of
	// our signature, so the formats agree both ways.
	sigFile := filepath.Join(dir, "sig")
	bodyFile := filepath.Join(dir, "body")
	raw := decodeSig(t, sk.Sign(m.Body))
	if err := os.WriteFile(sigFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bodyFile, m.Body, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(openssl, "pkeyutl", "-verify", "-pubin", "-inkey", pubPath, "-rawin", "-in", bodyFile, "-sigfile", sigFile).CombinedOutput(); err != nil {
		t.Fatalf("openssl does not verify our signature: %v\n%s", err, out)
	}
}

func TestKeyParsersRefuse(t *testing.T) {
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&ec.PublicKey)
	p256 := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := ParsePublicKeyPEM(p256); err == nil || !strings.Contains(err.Error(), "not Ed25519") {
		t.Errorf("P-256 key: %v", err)
	}
	if _, err := ParsePublicKeyPEM([]byte("junk")); err == nil {
		t.Error("junk public key accepted")
	}
	if _, err := ParseSigningKeyPEM([]byte("junk")); err == nil {
		t.Error("junk signing key accepted")
	}
	k, _ := GenerateDecryptionKey(SuiteX25519)
	good, _ := k.MarshalPEM()
	for name, data := range map[string]string{
		"junk":        "junk",
		"wrong suite": strings.Replace(string(good), "Suite: x25519", "Suite: x-wing", 1),
		"edited kid":  strings.Replace(string(good), "Kid: "+k.KID(), "Kid: 0000000000000000", 1),
		"two blocks":  string(good) + string(good),
		"no suite":    strings.Replace(string(good), "Suite: x25519\n", "", 1),
	} {
		if _, err := ParseDecryptionKeyPEM([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	docGood, _ := k.Public().MarshalJSON()
	for name, doc := range map[string]string{
		"kid mismatch": strings.Replace(string(docGood), k.KID(), "0000000000000000", 1),
		"unknown":      strings.Replace(string(docGood), `{`, `{"x":"y",`, 1),
		"suite":        strings.Replace(string(docGood), `"x25519"`, `"x-wing"`, 1),
		"not json":     "{",
	} {
		if _, err := ParseAgentPublicKey([]byte(doc)); err == nil {
			t.Errorf("public document %s: accepted", name)
		}
	}
}

func TestKeysDoNotPrint(t *testing.T) {
	k, _ := GenerateDecryptionKey(SuiteXWing)
	s, _ := GenerateSigningKey()
	for _, v := range []string{k.String(), s.String()} {
		if !strings.Contains(v, "[REDACTED]") {
			t.Errorf("%q", v)
		}
	}
}
