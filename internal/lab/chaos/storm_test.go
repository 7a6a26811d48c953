package chaos

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/bench"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// stormReplies receives the results of the bad messages that earn one
// (authenticated but invalid), away from the valid requests' results.
const stormReplies = "storm-replies"

// badKind is one way a message can be wrong, and the dead-letter reasons
// it may earn.
type badKind struct {
	name    string
	reasons []string
}

var badKinds = []badKind{
	{"random bytes", []string{"unauthenticated"}},
	{"empty body", []string{"malformed"}},
	{"huge body", []string{"malformed"}},
	{"wrong content type", []string{"malformed"}},
	{"bad signature", []string{"unauthenticated"}},
	{"untrusted signer", []string{"unauthenticated"}},
	{"no signature", []string{"unauthenticated"}},
	{"invalid JSON, signed", []string{wire.CodeInvalidRequest}},
	{"fuzzed field, signed", []string{wire.CodeInvalidRequest}},
}

// fieldMutations break one rule of protocol v1 §3–§4 each, in a body
// that is otherwise valid; the result is signed by the trusted sender.
var fieldMutations = []func(m map[string]any, rng *rand.Rand){
	func(m map[string]any, _ *rand.Rand) { m["v"] = 2 },
	func(m map[string]any, _ *rand.Rand) { m["v"] = "1" },
	func(m map[string]any, _ *rand.Rand) { m["id"] = "not-a-uuid" },
	func(m map[string]any, _ *rand.Rand) { m["op"] = "delete" },
	func(m map[string]any, _ *rand.Rand) { m["extra"] = true },
	func(m map[string]any, _ *rand.Rand) { m["target"] = map[string]any{} },
	func(m map[string]any, _ *rand.Rand) { m["target"] = map[string]any{"objectGUID": "xyz"} },
	func(m map[string]any, _ *rand.Rand) {
		m["target"] = map[string]any{"objectGUID": "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4", "userPrincipalName": "a@b"}
	},
	func(m map[string]any, _ *rand.Rand) { m["actor"] = map[string]any{"id": "x", "kind": "robot"} },
	func(m map[string]any, _ *rand.Rand) { delete(m, "actor") },
	func(m map[string]any, _ *rand.Rand) { m["issuedAt"] = "yesterday" },
	func(m map[string]any, _ *rand.Rand) { m["options"] = map[string]any{"unlock": "yes"} },
	func(m map[string]any, _ *rand.Rand) { delete(m, "secret") },
	func(m map[string]any, _ *rand.Rand) { m["secret"].(map[string]any)["kid"] = "0000000000000000" },
	func(m map[string]any, _ *rand.Rand) { m["secret"].(map[string]any)["enc"] = "!!not base64!!" },
	func(m map[string]any, rng *rand.Rand) {
		b := make([]byte, 64+rng.IntN(1200))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		m["secret"].(map[string]any)["enc"] = base64.RawURLEncoding.EncodeToString(b)
	},
	func(m map[string]any, _ *rand.Rand) { m["secret"].(map[string]any)["suite"] = "rot13" },
	func(m map[string]any, _ *rand.Rand) { m["id"] = strings.ToUpper(m["id"].(string)) },
}

// storm makes n bad messages aimed at the decoy account, cycling through
// the kinds, each with a fresh id; it returns them and each one's kind.
func storm(t *testing.T, w *world, decoy *account, n int, rng *rand.Rand) ([]protocol.Message, map[string]badKind) {
	t.Helper()
	keys := w.sh.keys
	untrusted, err := protocol.GenerateSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	valid := func() (protocol.Message, map[string]any) {
		spec := w.sender.Spec(wire.OpReset, protocol.Target{UserPrincipalName: decoy.user.UPN})
		spec.New = w.sh.dom.Secrets.New()
		spec.ReplyTo = stormReplies
		m, err := protocol.BuildRequest(keys.Signer, keys.Agent, spec)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatal(err)
		}
		return m, body
	}
	sign := func(m *protocol.Message, k *protocol.SigningKey) {
		m.ApplicationProperties = map[string]any{protocol.PropSender: k.KID(), protocol.PropSignature: k.Sign(m.Body)}
	}
	random := func(size int) []byte {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		return b
	}
	msgs := make([]protocol.Message, 0, n)
	kinds := map[string]badKind{}
	for i := range n {
		k := badKinds[i%len(badKinds)]
		m, body := valid()
		switch k.name {
		case "random bytes":
			m.Body = random(1 + rng.IntN(2000))
			m.ApplicationProperties = nil
		case "empty body":
			m.Body = nil
			sign(&m, keys.Signer)
		case "huge body":
			// Few of these: they are the costly ones to carry.
			if i%(len(badKinds)*20) == k.indexIn() {
				m.Body = random(protocol.MaxBodySize + 1 + rng.IntN(200<<10))
			} else {
				m.Body = append(m.Body, random(protocol.MaxBodySize-len(m.Body)+1)...)
			}
			sign(&m, keys.Signer)
		case "wrong content type":
			m.ContentType = []string{"application/json", "text/plain", "", "application/vnd.wbagent.request+json;v=2"}[rng.IntN(4)]
		case "bad signature":
			sig := []byte(m.ApplicationProperties[protocol.PropSignature].(string))
			sig[rng.IntN(len(sig))] ^= 0x01
			m.ApplicationProperties[protocol.PropSignature] = string(sig)
		case "untrusted signer":
			sign(&m, untrusted)
		case "no signature":
			delete(m.ApplicationProperties, protocol.PropSignature)
		case "invalid JSON, signed":
			cut := 1 + rng.IntN(len(m.Body)-1)
			m.Body = append([]byte(nil), m.Body[:cut]...)
			if rng.IntN(2) == 0 {
				m.Body = append(m.Body, `,"id":"dup"}`...)
			}
			sign(&m, keys.Signer)
		case "fuzzed field, signed":
			fieldMutations[rng.IntN(len(fieldMutations))](body, rng)
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			m.Body = b
			sign(&m, keys.Signer)
		}
		kinds[m.MessageID] = k
		msgs = append(msgs, m)
	}
	return msgs, kinds
}

// indexIn is the kind's place in badKinds.
func (k badKind) indexIn() int {
	return slices.IndexFunc(badKinds, func(o badKind) bool { return o.name == k.name })
}

// stormRotateMB is audit.rotate.maxSizeMB in the storm.
const stormRotateMB = 1

// Ten thousand bad messages (short form: a few hundred) of every kind,
// with a hundred valid requests among them: the valid ones are applied,
// every bad one is dead-lettered with a reason (and answered
// invalid_request when it was authenticated), none touches the account it
// names, the agent's memory stays bounded and it never crashes. The audit
// trail stays bounded too: messages nobody trusted are aggregated (their
// lines' counts add up to every one of them), the file rotates, and
// `wbagent audit verify` checks the rotated set as one chain.
func TestBadMessageStorm(t *testing.T) {
	w := newWorld(t, worldOptions{})
	if err := w.srv.AddQueue(devbus.QueueConfig{Name: stormReplies}); err != nil {
		t.Fatal(err)
	}
	files := w.writeAgent("agent-1")
	rotateAudit(t, files, stormRotateMB)
	a := w.runAgent(files)
	began := time.Now()
	pid, err := bench.FindProcess(w.sh.bin, "run", "--config", a.Files.Config)
	if err != nil {
		t.Fatal(err)
	}
	nBad, nValid := pick(360, 10000), pick(10, 100)
	accts := w.accounts(nValid + 1)
	decoy, accts := accts[0], accts[1:]
	rng := rand.New(rand.NewPCG(1, 2))
	bad, kinds := storm(t, w, decoy, nBad, rng)
	c, err := bench.NewClient(w.bus, w.sh.keys, queueName, false, stormReplies)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var rs []*request
	chunk := nBad / nValid
	for i, acct := range accts {
		if err := c.SendAll(w.ctx, bad[i*chunk:(i+1)*chunk]); err != nil {
			t.Fatal(err)
		}
		rs = append(rs, w.send(acct, wire.OpReset, nil))
	}
	if err := c.SendAll(w.ctx, bad[nValid*chunk:]); err != nil {
		t.Fatal(err)
	}
	w.waitAnswered(rs, pick(2*time.Minute, 10*time.Minute))
	deadline := time.Now().Add(pick(2*time.Minute, 10*time.Minute))
	for {
		st, err := w.srv.Stats(queueName)
		if err != nil {
			t.Fatal(err)
		}
		if st.DeadLettered >= nBad && st.Active == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d bad messages dead-lettered (queue: %+v)", st.DeadLettered, nBad, st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	proc, err := bench.ReadProc(pid)
	if err != nil {
		t.Fatalf("the agent process is gone: %v", err)
	}
	if now, err := bench.FindProcess(w.sh.bin, "run", "--config", a.Files.Config); err != nil || now != pid || !a.Running() {
		t.Fatalf("the agent crashed during the storm (pid %d, now %d, %v)", pid, now, err)
	}
	const maxRSS = 150 << 20
	if proc.PeakRSS > maxRSS {
		t.Errorf("agent peak RSS %d MiB during the storm, more than %d MiB", proc.PeakRSS>>20, maxRSS>>20)
	}
	if logged(t, a, "panicked") {
		t.Error("the writeback handler panicked on a bad message")
	}
	s := w.checkInvariants()
	allOK(t, s)
	byReason := map[string]int{}
	for _, d := range s.deadLettered {
		k, ok := kinds[d.MessageID]
		if !ok {
			continue
		}
		byReason[d.DeadLetterReason]++
		if !slices.Contains(k.reasons, d.DeadLetterReason) {
			t.Errorf("%s message %s dead-lettered %s (%s), want %v", k.name, d.MessageID, d.DeadLetterReason, d.DeadLetterDescription, k.reasons)
		}
		delete(kinds, d.MessageID)
	}
	for id, k := range kinds {
		t.Errorf("%s message %s was not dead-lettered", k.name, id)
	}
	results, err := c.WaitCount(w.ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	codes, err := c.Verify(results)
	if err != nil {
		t.Error(err)
	}
	for code := range codes {
		if code != wire.CodeInvalidRequest {
			t.Errorf("a bad message was answered %s", code)
		}
	}
	if v, err := pwdVersion(w.ctx, w.sh.dom, decoy.user.DN); err != nil || v != decoy.v0 {
		t.Errorf("the decoy account's password was written (version %d, was %d): %v", v, decoy.v0, err)
	}
	if err := w.sh.dom.CheckPassword(w.ctx, decoy.user, decoy.user.Password); err != nil {
		t.Errorf("decoy: %v", err)
	}
	t.Logf("%d bad messages dead-lettered %v, %d answered invalid_request; agent peak RSS %d MiB, CPU %s",
		nBad, byReason, codes[wire.CodeInvalidRequest], proc.PeakRSS>>20, proc.CPU)
	checkStormAudit(t, w, a, byReason, time.Since(began))
}

// checkStormAudit checks the audit trail after the storm (the agent has
// stopped, so every aggregation window is written): the lines of
// untrusted messages stay few and count every one, no file outgrows the
// rotation size, and the rotated set verifies with `wbagent audit verify`.
func checkStormAudit(t *testing.T, w *world, a *testbed.Agent, byReason map[string]int, took time.Duration) {
	t.Helper()
	recs, err := a.Audit()
	if err != nil {
		t.Fatal(err)
	}
	lines, counted := map[string]int{}, map[string]int{}
	for _, r := range recs {
		if r.Event != audit.EventDeadLettered || (r.Code != "malformed" && r.Code != "unauthenticated") {
			continue
		}
		lines[r.Code]++
		counted[r.Code] += max(r.Count, 1)
	}
	// One window a minute per reason and sender kid (the storm claims a
	// handful of kids), each a first line and a summary.
	windows := int(took/time.Minute) + 2
	for _, reason := range []string{"malformed", "unauthenticated"} {
		if counted[reason] != byReason[reason] {
			t.Errorf("the audit lines of %s messages count %d, but %d were dead-lettered", reason, counted[reason], byReason[reason])
		}
		if bound := 2 * 8 * windows; lines[reason] > bound {
			t.Errorf("%d audit lines for %d %s messages in %s; want at most %d", lines[reason], byReason[reason], reason, took.Round(time.Second), bound)
		}
	}
	rotated, err := audit.RotatedFiles(a.Files.Audit)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, p := range append(rotated, a.Files.Audit) {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		total += st.Size()
		// Rotation happens before a write would pass the size; one write
		// is at most a batch of lines.
		if limit := int64(stormRotateMB<<20) + 512<<10; st.Size() > limit {
			t.Errorf("%s is %d bytes, more than %d", p, st.Size(), limit)
		}
	}
	if full() && len(rotated) == 0 {
		t.Errorf("the audit file (%d bytes) never rotated at %d MB", total, stormRotateMB)
	}
	out, err := exec.CommandContext(w.ctx, w.sh.bin, "audit", "verify", a.Files.Audit).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "hash chain OK") {
		t.Errorf("wbagent audit verify: %v\n%s", err, out)
	}
	verdict := ""
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, "hash chain") {
			verdict = l
		}
	}
	t.Logf("audit trail: %d lines, %d bytes in %d files (rotation at %d MB); untrusted messages: %v lines counting %v; audit verify: %s",
		len(recs), total, len(rotated)+1, stormRotateMB, lines, counted, verdict)
}

// rotateAudit sets audit.rotate.maxSizeMB in the agent's config.
func rotateAudit(t *testing.T, f *testbed.AgentFiles, mb int) {
	t.Helper()
	old := "audit:\n  file: " + testbed.Quote(f.Audit) + "\n"
	if err := f.ReplaceInConfig(old, old+fmt.Sprintf("  rotate: {maxSizeMB: %d}\n", mb)); err != nil {
		t.Fatal(err)
	}
}
