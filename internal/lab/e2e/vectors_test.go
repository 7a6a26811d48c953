package e2e

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/lab/vectors"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// loadVectors reads the vectors from shared/, beside the checkout.
func loadVectors(t *testing.T) *vectors.File {
	t.Helper()
	root, err := testbed.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "..", vectors.RelPath)
	v, err := vectors.Read(path)
	if err != nil {
		t.Fatalf("the protocol vectors belong beside the checkout: %v", err)
	}
	if len(v.Requests) < 12 || v.Now.IsZero() {
		t.Fatalf("%s: %d requests, now %v: not the vectors this test knows", path, len(v.Requests), v.Now)
	}
	return v
}

// vectorKeys writes the vectors' agent keys and trusted sender as key
// files and returns them for the agent's config, with the sender's signing
// key.
func vectorKeys(t *testing.T, v *vectors.File, dir string) (decryption []string, signing, sender string, signer *protocol.SigningKey) {
	t.Helper()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for i, k := range v.AgentDecryptionKeys {
		raw, err := base64.RawURLEncoding.DecodeString(k.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		dk, err := protocol.NewDecryptionKey(protocol.Suite(k.Suite), raw)
		if err != nil {
			t.Fatal(err)
		}
		pem, err := dk.MarshalPEM()
		if err != nil {
			t.Fatal(err)
		}
		decryption = append(decryption, write("agent-hpke-"+string(rune('a'+i))+".key", pem, 0o600))
	}
	signing = write("agent-sign.key", []byte(v.AgentSigningKey.PrivateKeyPEM), 0o600)
	sender = write("sender.pub", []byte(v.TrustedSender.PublicKeyPEM), 0o644)
	signer, err := protocol.ParseSigningKeyPEM([]byte(v.TrustedSender.PrivateKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	return decryption, signing, sender, signer
}

var timeMember = regexp.MustCompile(`"(issuedAt|expiresAt)":"([^"]+)"`)

// shift moves the body's issuedAt and expiresAt by d and re-signs the body
// with signer. The agent's clock then stands to the request's times
// exactly where the vectors' "now" stood: the agent runs as a separate
// process on the real clock, and a product flag to set its clock would be
// a hole. A secret is bound to the request id, op and target, not to the
// times, so it still opens (or fails to) as the vector says.
func shift(t *testing.T, body string, d time.Duration, signer *protocol.SigningKey) (string, string) {
	t.Helper()
	out := timeMember.ReplaceAllStringFunc(body, func(m string) string {
		parts := timeMember.FindStringSubmatch(m)
		at, err := time.Parse(time.RFC3339, parts[2])
		if err != nil {
			t.Fatalf("vector time %q: %v", parts[2], err)
		}
		return `"` + parts[1] + `":"` + at.Add(d).UTC().Format(time.RFC3339) + `"`
	})
	return out, signer.Sign([]byte(out))
}

// The protocol vectors' requests, sent as real messages to agent processes
// whose keys are the vectors' keys. The negative cases are dead-lettered
// or answered as the vectors expect, and the directory takes no write at
// all while they are handled (its highestCommittedUSN does not move). On
// the session queue the accepted vectors are applied too: the change, the
// unlock and the unicode reset made by an independent implementation of
// the spec work against the real DC.
func TestProtocolVectors(t *testing.T) {
	needDC(t)
	v := loadVectors(t)
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) { protocolVectors(t, v, sessions) })
}

func protocolVectors(t *testing.T, v *vectors.File, sessions bool) {
	r := newRun(t, sessions)
	dec, signing, sender, signer := vectorKeys(t, v, r.dir)
	agent := r.agent("agent-v", func(c *testbed.AgentConfig) {
		c.DecryptionKeys, c.SigningKey, c.TrustedSenders = dec, signing, []string{sender}
	})
	resultKey, err := protocol.ParsePublicKeyPEM([]byte(v.AgentSigningKey.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	r.send.AcceptResultKey(resultKey)
	for _, req := range v.Requests {
		if s := req.Expect.Secret; s != nil {
			dom.Secrets.TrackString(s.New)
			if s.Old != nil {
				dom.Secrets.TrackString(*s.Old)
			}
		}
	}
	// Whole seconds, so the shifted times keep the vectors' format.
	delta := time.Until(v.Now).Round(time.Second) * -1
	trusted, err := protocol.ParsePublicKeyPEM([]byte(v.TrustedSender.PublicKeyPEM))
	if err != nil {
		t.Fatal(err)
	}
	build := func(i int) protocol.Message {
		req := v.Requests[i]
		body, sig := req.Body, req.ApplicationProperties[protocol.PropSignature]
		orig, _ := base64.RawURLEncoding.DecodeString(sig.(string))
		if ed25519.Verify(trusted, []byte(body), orig) {
			body, sig = shift(t, body, delta, signer)
		}
		// Tampered and untrusted bodies fail authentication before any
		// time check, so they go as they are.
		m := protocol.Message{
			MessageID: req.MessageID, ContentType: req.ContentType, ReplyTo: replyQueue,
			ApplicationProperties: map[string]any{protocol.PropSender: req.ApplicationProperties[protocol.PropSender], protocol.PropSignature: sig},
			Body:                  []byte(body), TimeToLive: 30 * time.Minute,
		}
		if sessions {
			m.SessionID = req.SessionID
		}
		return m
	}
	// The negative cases first, with the directory watched.
	before, err := dom.HighestUSN(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	var outs []outcome
	for i, req := range v.Requests {
		e := req.Expect
		if e.Outcome == "accept" {
			continue
		}
		m := build(i)
		if err := r.send.SendMessage(r.ctx, m); err != nil {
			t.Fatal(err)
		}
		o := outcome{what: "vector " + req.Name, msg: m}
		switch e.Outcome {
		case "deadletter": // not authenticated: no result, no op known
			o.code, o.settle, o.event, o.rule = e.Reason, "deadletter", "dead_lettered", ""
		case "reject":
			o.code, o.result, o.op = e.Code, true, vectorOp(t, req.Body)
			if req.Name == "unknown-member" {
				o.op = "" // a body that breaks the strict JSON rules has no trusted op
			}
			o.settle = map[string]string{"deadletter": "deadletter", "complete": "complete"}[e.Settle]
			o.event = map[string]string{"deadletter": "dead_lettered", "complete": "result"}[e.Settle]
		default:
			t.Fatalf("vector %s: outcome %q is not known to this test", req.Name, e.Outcome)
		}
		outs = append(outs, o)
	}
	if len(outs) != 8 {
		t.Fatalf("%d negative vectors, want 8", len(outs))
	}
	r.verify(outs, agent)
	after, err := dom.HighestUSN(r.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Fatalf("the directory was written while the negative vectors were handled: highestCommittedUSN %s -> %s", before, after)
	}
	for _, o := range outs {
		for _, rep := range r.send.Replies(o.msg.MessageID) {
			if protocol.KID(resultKey) != rep.Message.ApplicationProperties[protocol.PropSender] {
				t.Errorf("%s: result signed by %v, not the vectors' agent key", o.what, rep.Message.ApplicationProperties[protocol.PropSender])
			}
		}
	}
	if !sessions {
		return
	}
	acceptedVectors(t, r, v, agent, build)
}

// vectorOp reads a vector body's op, as the agent does once it trusts it.
func vectorOp(t *testing.T, body string) string {
	var b struct {
		Op string `json:"op"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatal(err)
	}
	return b.Op
}

// acceptedVectors applies the vectors the agent accepts, against accounts
// made to match their targets: alice (UPN and CORP\alice) with the
// vectors' old password, and an account whose mS-DS-ConsistencyGuid is
// the immutableId vector's anchor. The objectGUID vector names a GUID no
// DC here can have: user_not_found.
func acceptedVectors(t *testing.T, r *run, v *vectors.File, agent *testbed.Agent, build func(int) protocol.Message) {
	ctx := r.ctx
	byName := map[string]int{}
	for i, req := range v.Requests {
		byName[req.Name] = i
	}
	old := *v.Requests[byName["change-upn-x25519"]].Expect.Secret.Old
	alice, err := dom.AddUserSpec(ctx, "alice", dom.Staff, func(s *sambadc.UserSpec) { s.Password = secret.FromString(old) })
	if err != nil {
		t.Fatal(err)
	}
	anchor, _ := base64.StdEncoding.DecodeString("opvjPjVaPkyUSq6wp5wB1A==")
	anchored, err := dom.AddUserSpec(ctx, dom.UniqueName("anchored"), dom.Staff, func(s *sambadc.UserSpec) {
		s.Attrs = map[string][]string{"mS-DS-ConsistencyGuid": {string(anchor)}}
	})
	if err != nil {
		t.Fatal(err)
	}
	send := func(name string) protocol.Message {
		m := build(byName[name])
		if err := r.send.SendMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ok := func(name, op string, u *testbed.User) outcome {
		return outcome{what: "vector " + name, msg: send(name), op: op, code: wire.CodeOK, result: true, settle: "complete", event: "result", dn: u.DN}
	}
	outs := []outcome{
		{what: "vector reset-objectGUID-x-wing", msg: send("reset-objectGUID-x-wing"), op: "reset", code: wire.CodeUserNotFound,
			result: true, settle: "complete", event: "result"},
		ok("change-upn-x25519", "change", alice),
		ok("reset-immutableId-unicode-password", "reset", anchored),
	}
	r.verify(outs, agent)
	unlock := ok("unlock-sam-domain", "unlock", alice)
	r.verify([]outcome{unlock}, agent)
	newPw := v.Requests[byName["change-upn-x25519"]].Expect.Secret.New
	if err := dom.CheckPassword(ctx, alice, secret.FromString(newPw)); err != nil {
		t.Errorf("alice after the change vector: %v", err)
	}
	uni := v.Requests[byName["reset-immutableId-unicode-password"]].Expect.Secret.New
	if code := testbed.BindCode(dom.CheckPassword(ctx, anchored, secret.FromString(uni))); code != "773" {
		t.Errorf("after the unicode reset with mustChange: bind %q, want 773 (must change)", code)
	}
}
