package protocol

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"testing"
	"time"

	"wbagent/internal/lab/vectors"
	"wbagent/internal/wire"
)

// loadVectors finds shared/testvectors/protocol-v1.json by walking up from
// the package directory, so the test works from any checkout beside shared/.
func loadVectors(t testing.TB) *vectors.File {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	p := vectors.Find(dir)
	if p == "" {
		t.Skip("shared/testvectors/protocol-v1.json not found beside the repository (looked in every parent of the package directory); the protocol vector tests need the shared/ folder")
	}
	v, err := vectors.Read(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Requests) == 0 {
		t.Fatalf("%s holds no request vectors", p)
	}
	return v
}

func vectorOpener(t testing.TB, v *vectors.File) *Opener {
	t.Helper()
	var keys []*DecryptionKey
	for _, k := range v.AgentDecryptionKeys {
		raw, err := base64.RawURLEncoding.DecodeString(k.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		dk, err := NewDecryptionKey(Suite(k.Suite), raw)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, dk)
	}
	sender, err := ParsePublicKeyPEM([]byte(v.TrustedSender.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOpener(keys, []ed25519PublicKey{sender}, Limits{MaxClockSkew: 2 * time.Minute, MaxLifetime: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestVectorKeys(t *testing.T) {
	v := loadVectors(t)
	for _, k := range v.AgentDecryptionKeys {
		pub, err := ParseAgentPublicKey(k.Public)
		if err != nil {
			t.Fatalf("%s public document: %v", k.Suite, err)
		}
		if string(pub.Suite()) != k.Suite {
			t.Errorf("public document suite %s, want %s", pub.Suite(), k.Suite)
		}
		ikm, _ := hex.DecodeString(k.DeriveKeyPairIKM)
		derived, err := DeriveDecryptionKey(Suite(k.Suite), ikm)
		if err != nil {
			t.Fatal(err)
		}
		if derived.KID() != pub.KID() {
			t.Errorf("%s: derived kid %s, document kid %s", k.Suite, derived.KID(), pub.KID())
		}
		// The vectors' privateKey is SerializePrivateKey of the derived pair
		// (X-Wing: the 32-byte seed; X25519: the scalar): the key file form.
		raw, _ := derived.priv.Bytes()
		if got := base64.RawURLEncoding.EncodeToString(raw); got != k.PrivateKey {
			t.Errorf("%s: serialized private key differs from the vector", k.Suite)
		}
		// The key file round trip keeps the kid.
		pemData, err := derived.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		back, err := ParseDecryptionKeyPEM(pemData)
		if err != nil || back.KID() != pub.KID() || back.Suite() != pub.Suite() {
			t.Errorf("%s: PEM round trip gave %v, %v", k.Suite, back, err)
		}
	}
	for _, e := range []vectors.Ed25519{v.AgentSigningKey, v.TrustedSender, v.UntrustedSender} {
		pub, err := ParsePublicKeyPEM([]byte(e.PublicKeyPEM))
		if err != nil {
			t.Fatal(err)
		}
		if KID(pub) != e.KID {
			t.Errorf("kid of %s computed as %s", e.KID, KID(pub))
		}
		if e.PrivateKeyPEM != "" {
			sk, err := ParseSigningKeyPEM([]byte(e.PrivateKeyPEM))
			if err != nil {
				t.Fatal(err)
			}
			if sk.KID() != e.KID {
				t.Errorf("private key kid %s, want %s", sk.KID(), e.KID)
			}
		}
	}
}

func TestVectorRequests(t *testing.T) {
	v := loadVectors(t)
	o := vectorOpener(t, v)
	for _, c := range v.Requests {
		t.Run(c.Name, func(t *testing.T) {
			m := Message{
				MessageID: c.MessageID, ContentType: c.ContentType, SessionID: c.SessionID,
				ReplyTo: "results", ReplyToSessionID: "rs-1",
				ApplicationProperties: c.ApplicationProperties, Body: []byte(c.Body),
			}
			req, err := o.Open(m, v.Now)
			defer req.Destroy()
			var rej *Rejection
			if err != nil && !errors.As(err, &rej) {
				t.Fatalf("Open returned %T %v, want *Rejection", err, err)
			}
			want := c.Expect
			switch want.Outcome {
			case "accept":
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if string(req.Op) != want.Op || req.Target.Key() != want.TargetKey {
					t.Errorf("op %s target %q, want %s %q", req.Op, req.Target.Key(), want.Op, want.TargetKey)
				}
				if req.Target.SessionID() != c.SessionID {
					t.Errorf("session id %s, want %s", req.Target.SessionID(), c.SessionID)
				}
				if want.Options != nil && (req.Unlock != want.Options.Unlock || req.MustChange != want.Options.MustChange) {
					t.Errorf("options unlock=%v mustChange=%v, want %+v", req.Unlock, req.MustChange, *want.Options)
				}
				if want.Op == "unlock" && !req.Unlock {
					t.Error("unlock op does not imply Unlock")
				}
				if want.Secret == nil {
					if req.New != nil || req.Old != nil {
						t.Error("a request without secret returned passwords")
					}
					break
				}
				if req.New.Reveal() != want.Secret.New {
					t.Error("new password differs from the vector")
				}
				if want.Secret.Old != nil && req.Old.Reveal() != *want.Secret.Old {
					t.Error("old password differs from the vector")
				}
				if want.Secret.Old == nil && req.Old != nil {
					t.Error("old password returned for a reset")
				}
				if req.ReplyTo != "results" || req.ReplyToSessionID != "rs-1" || req.ID != c.MessageID {
					t.Errorf("transport fields not carried: %+v", req)
				}
			case "deadletter":
				if rej == nil {
					t.Fatal("accepted, want dead-letter")
				}
				if rej.Class.String() != want.Reason || rej.Class.SendsResult() || !rej.Class.DeadLetters() {
					t.Errorf("class %s, want dead-letter %s without result", rej.Class, want.Reason)
				}
				if rej.Request != nil {
					t.Error("an unauthenticated rejection carries request fields")
				}
			case "reject":
				if rej == nil {
					t.Fatal("accepted, want rejection")
				}
				if rej.Code() != want.Code || !rej.Class.SendsResult() {
					t.Errorf("code %s (result %v), want %s with result", rej.Code(), rej.Class.SendsResult(), want.Code)
				}
				if dl := want.Settle == "deadletter"; rej.Class.DeadLetters() != dl {
					t.Errorf("dead-letters=%v, want settle %s", rej.Class.DeadLetters(), want.Settle)
				}
				if rej.Request == nil || rej.Request.ID != c.MessageID || rej.Request.ReplyTo != "results" || rej.Request.ReplyToSessionID != "rs-1" {
					t.Errorf("rejection lacks what the result needs: %+v", rej.Request)
				}
				if rej.Rule == "" {
					t.Error("rejection names no rule")
				}
				t.Logf("rule: %s", rej.Rule)
			default:
				t.Fatalf("unknown expected outcome %q", want.Outcome)
			}
		})
	}
}

func TestVectorResult(t *testing.T) {
	v := loadVectors(t)
	pub, err := ParsePublicKeyPEM([]byte(v.AgentSigningKey.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	m := Message{
		ContentType: v.Result.ContentType, ApplicationProperties: v.Result.ApplicationProperties,
		Body: []byte(v.Result.Body), CorrelationID: "0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21",
	}
	r, err := VerifyResult(pub, m)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusSucceeded || r.Code != wire.CodeOK || r.Reason != Reason(wire.CodeOK, "") {
		t.Errorf("result %+v", r)
	}
	// Signing the same result with the vector key reproduces the vector
	// byte for byte: Ed25519 is deterministic, so body and signature match
	// only if the encoding is the same.
	sk, err := ParseSigningKeyPEM([]byte(v.AgentSigningKey.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	out, err := SignResult(sk, *r, "reply-session")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Body, m.Body) {
		t.Errorf("body\n got %s\nwant %s", out.Body, m.Body)
	}
	if out.ApplicationProperties[PropSignature] != v.Result.ApplicationProperties[PropSignature] ||
		out.ApplicationProperties[PropSender] != v.Result.ApplicationProperties[PropSender] {
		t.Errorf("properties %v, want %v", out.ApplicationProperties, v.Result.ApplicationProperties)
	}
	if out.ContentType != ResultContentType || out.Subject != ResultSubject || out.CorrelationID != r.ID || out.SessionID != "reply-session" || out.MessageID == "" {
		t.Errorf("result message fields %+v", out)
	}
	// A flipped byte must not verify.
	m.Body = bytes.Replace(m.Body, []byte("succeeded"), []byte("succeedeD"), 1)
	if _, err := VerifyResult(pub, m); err == nil {
		t.Error("altered result verified")
	}
}

// TestVectorSenderInterop builds requests with this package's sender side and
// the vectors' keys, and opens them: the agent accepts what the tool sends.
func TestVectorSenderInterop(t *testing.T) {
	v := loadVectors(t)
	o := vectorOpener(t, v)
	sk, err := ParseSigningKeyPEM([]byte(v.TrustedSender.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range v.AgentDecryptionKeys {
		pub, err := ParseAgentPublicKey(k.Public)
		if err != nil {
			t.Fatal(err)
		}
		m, err := BuildRequest(sk, pub, RequestSpec{
			Op: wire.OpChange, Target: Target{SAMAccountName: "alice", Domain: "CORP"},
			Actor: Actor{ID: "alice@corp.example.test", Kind: ActorSelf}, Session: true,
			IssuedAt: v.Now, ExpiresAt: v.Now.Add(5 * time.Minute),
			New: secretOf("n\"e\\w\x01é"), Old: secretOf("old"),
		})
		if err != nil {
			t.Fatal(err)
		}
		req, err := o.Open(m, v.Now)
		if err != nil {
			t.Fatalf("%s: %v", k.Suite, err)
		}
		if req.New.Reveal() != "n\"e\\w\x01é" || req.Old.Reveal() != "old" || string(req.Suite) != k.Suite {
			t.Errorf("%s: opened request differs", k.Suite)
		}
		req.Destroy()
	}
}
