package protocol

import (
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"wbagent/internal/wire"

	"github.com/google/uuid"
)

// randomTarget returns a valid target of a random form.
func randomTarget(r *rand.Rand) Target {
	word := func() string {
		const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_é"
		n := 1 + r.IntN(12)
		var b strings.Builder
		for range n {
			b.WriteRune([]rune(letters)[r.IntN(len([]rune(letters)))])
		}
		return b.String()
	}
	var raw [16]byte
	for i := range raw {
		raw[i] = byte(r.UintN(256))
	}
	switch r.IntN(5) {
	case 0:
		return Target{ObjectGUID: GUIDString(raw)}
	case 1:
		return Target{ImmutableID: base64.StdEncoding.EncodeToString(raw[:])}
	case 2:
		return Target{UserPrincipalName: word() + "@" + word()}
	case 3:
		return Target{SAMAccountName: word()}
	default:
		return Target{SAMAccountName: word(), Domain: word()}
	}
}

// TestSealBinding checks the property of §3: a ciphertext opens for its own
// request id, op and target, and for no other — including targets that
// differ only in form (the same value under another member name).
func TestSealBinding(t *testing.T) {
	f := newFixture(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 40 {
		key := f.xwing
		if i%2 == 1 {
			key = f.x25519
		}
		id := uuid.NewString()
		op := []wire.Op{wire.OpReset, wire.OpChange}[r.IntN(2)]
		target := randomTarget(r)
		var old = secretOf("old-pass")
		if op == wire.OpReset {
			old = nil
		}
		sealed, err := Seal(key.Public(), id, op, target, secretOf(testPassword), old)
		if err != nil {
			t.Fatal(err)
		}
		enc, _ := base64.RawURLEncoding.DecodeString(sealed.Enc)
		s := sealedSecret{kid: sealed.KID, suite: sealed.Suite, enc: enc}
		open := func(id string, op wire.Op, target Target) error {
			req := &Request{ID: id, Op: op, Target: target}
			defer req.Destroy()
			return f.opener.openSecret(req, s)
		}
		if err := open(id, op, target); err != nil {
			t.Fatalf("%s %s %q: own ciphertext does not open: %v", id, op, target.Key(), err)
		}
		otherOp := wire.OpChange
		if op == wire.OpChange {
			otherOp = wire.OpReset
		}
		sameValueOtherForm := Target{UserPrincipalName: target.Key()[strings.IndexByte(target.Key(), '=')+1:]}
		if target.UserPrincipalName != "" {
			sameValueOtherForm = Target{SAMAccountName: target.UserPrincipalName}
		}
		others := map[string]func() error{
			"other id":          func() error { return open(uuid.NewString(), op, target) },
			"other op":          func() error { return open(id, otherOp, target) },
			"unlock op":         func() error { return open(id, wire.OpUnlock, target) },
			"other target":      func() error { return open(id, op, randomTarget(r)) },
			"same value, other": func() error { return open(id, op, sameValueOtherForm) },
		}
		if target.SAMAccountName != "" {
			others["domain changed"] = func() error {
				t2 := target
				t2.Domain += "x"
				return open(id, op, t2)
			}
		}
		for name, try := range others {
			if err := try(); err == nil || !strings.Contains(err.Error(), "does not open") {
				t.Errorf("%s: ciphertext for %s %s %q: err %v", name, id, op, target.Key(), err)
			}
		}
	}
}

// TestSealMovedBetweenRequests moves a sealed secret into another, validly
// signed request for a different target: the agent refuses it as
// invalid_request instead of setting that target's password.
func TestSealMovedBetweenRequests(t *testing.T) {
	f := newFixture(t)
	victim := f.spec()
	victim.Target = Target{UserPrincipalName: "ceo@contoso.example"}
	donor := f.build(t, f.spec(), f.xwing)
	body := string(donor.Body)
	moved := strings.Replace(body, `"target":{"objectGUID":"3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"}`, `"target":{"userPrincipalName":"ceo@contoso.example"}`, 1)
	_, err := f.opener.Open(f.resign(donor, moved), f.now)
	var rej *Rejection
	if !errors.As(err, &rej) || rej.Class != Invalid || !strings.Contains(rej.Rule, "does not open") {
		t.Fatalf("moved secret: %v", err)
	}
	if rej.Request.Target != victim.Target {
		t.Errorf("rejection target %+v", rej.Request.Target)
	}
}

func TestGUID(t *testing.T) {
	// The example of §4.
	b, err := GUIDBytes("3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4")
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("% x", b); got != "a2 9b e3 3e 35 5a 3e 4c 94 4a ae b0 a7 9c 01 d4" {
		t.Errorf("bytes %s", got)
	}
	if GUIDString(b) != "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4" {
		t.Errorf("string %s", GUIDString(b))
	}
	if u, _ := GUIDBytes("3EE39BA2-5A35-4C3E-944A-AEB0A79C01D4"); u != b {
		t.Error("upper case GUID differs")
	}
	for _, bad := range []string{"", "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d", "3ee39ba2+5a35-4c3e-944a-aeb0a79c01d4", "3ee39ba2-5a35-4c3e-944a-aeb0a79c01dg",
		"00000000-0000-000--0000-000000000000"} { // a fifth dash once made the digits short and panicked
		if _, err := GUIDBytes(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestTargetKeyAndSession(t *testing.T) {
	for _, c := range []struct {
		t          Target
		key, sessn string
	}{
		{Target{ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"}, "objectGUID=3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4", "u:8d0376c596aceaae8f91503ad722722d"},
		{Target{SAMAccountName: "alice", Domain: "CORP"}, "domain=CORP\x00sAMAccountName=alice", "u:86f8d253bf3a0f9e24d3f32302ede81f"},
		{Target{SAMAccountName: "alice"}, "sAMAccountName=alice", ""},
	} {
		if got := c.t.Key(); got != c.key {
			t.Errorf("key %q, want %q", got, c.key)
		}
		if c.sessn != "" && c.t.SessionID() != c.sessn {
			t.Errorf("session %s, want %s", c.t.SessionID(), c.sessn)
		}
	}
}
