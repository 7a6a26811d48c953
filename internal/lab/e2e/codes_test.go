package e2e

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Every result code of protocol v1 §6 that a directory or a request can
// produce, and every dead-letter reason of §8, reached through a real DC,
// devbus and agent processes, on session and plain queues; each checked
// for its result, its settlement and its audit line, and each write or
// refusal checked against the directory by binding as the user.
// directory_unavailable (abandoned, then expired) has its own test.
func TestResultCodes(t *testing.T) {
	testkit.ForQueueKinds(t, resultCodes)
}

func resultCodes(t *testing.T, sessions bool) {
	r := newRun(t, sessions)
	agent := r.agent("agent-1", nil)
	ctx := r.ctx
	s := dom.Sample
	pw := dom.Secrets.New

	byUPN, byGUID, unlockMe, changer := r.user("upn"), r.user("guid"), r.user("unlock"), r.user("chg")
	policy, wrongOld, lockedChange, young := r.user("pol"), r.user("wrong"), r.user("lchg"), r.user("young")
	anchor := randomID(t)
	byAnchor := r.userWith("anchor", anchor)
	shared := randomID(t)
	twinA, twinB := r.userWith("twin", shared), r.userWith("twin", shared)
	for _, u := range []*testbed.User{byAnchor, unlockMe, lockedChange} {
		if err := dom.Lock(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := dom.DC.CreatePSO(ctx, sambadc.PSO{Name: "young-" + young.SAMAccountName, Precedence: 5, MinLength: 7,
		Complexity: true, History: 24, MinAge: 24 * time.Hour, AppliesTo: []string{young.DN}}); err != nil {
		t.Fatal(err)
	}

	upnPw, guidPw, anchorPw, chgPw := pw(), pw(), pw(), pw()
	mustChange := r.spec(wire.OpReset, protocol.Target{ObjectGUID: byGUID.ObjectGUID}, guidPw, nil)
	mustChange.MustChange = true
	resetUnlock := r.spec(wire.OpReset, protocol.Target{ImmutableID: anchor}, anchorPw, nil)
	resetUnlock.Unlock = true
	expired := r.spec(wire.OpReset, protocol.Target{UserPrincipalName: byUPN.UPN}, pw(), nil)
	expired.IssuedAt, expired.ExpiresAt = time.Now().Add(-10*time.Minute), time.Now().Add(-5*time.Minute)
	short, lower := secret.FromString("Ab1-x"), secret.FromString("alllowercaseletters")
	dom.Secrets.Track(short)
	dom.Secrets.Track(lower)

	type tc struct {
		outcome
		spec protocol.RequestSpec
	}
	ok := func(what string, spec protocol.RequestSpec, u *testbed.User) tc {
		return tc{outcome{what: what, op: string(spec.Op), code: wire.CodeOK, result: true, settle: "complete", event: "result", dn: u.DN}, spec}
	}
	refused := func(what string, spec protocol.RequestSpec, code, detail string, u *testbed.User) tc {
		dn := ""
		if u != nil {
			dn = u.DN
		}
		return tc{outcome{what: what, op: string(spec.Op), code: code, detail: detail, result: true, settle: "complete", event: "result", dn: dn}, spec}
	}
	cases := []tc{
		ok("reset by userPrincipalName", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: byUPN.UPN}, upnPw, nil), byUPN),
		ok("reset with mustChange by objectGUID", mustChange, byGUID),
		ok("reset+unlock of a locked account by immutableId (mS-DS-ConsistencyGuid)", resetUnlock, byAnchor),
		ok("unlock by sAMAccountName and NetBIOS domain", r.spec(wire.OpUnlock, protocol.Target{SAMAccountName: unlockMe.SAMAccountName, Domain: dom.DC.NetBIOS()}, nil, nil), unlockMe),
		ok("change by sAMAccountName", r.spec(wire.OpChange, protocol.Target{SAMAccountName: changer.SAMAccountName}, chgPw, changer.Password), changer),
		refused("reset too short", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: policy.UPN}, short, nil), wire.CodePasswordPolicy, wire.DetailTooShort, policy),
		refused("reset not complex", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: policy.UPN}, lower, nil), wire.CodePasswordPolicy, wire.DetailComplexity, policy),
		refused("change too young (fine-grained policy, minimum age 1 day)", r.spec(wire.OpChange, protocol.Target{UserPrincipalName: young.UPN}, pw(), young.Password), wire.CodePasswordPolicy, wire.DetailTooYoung, young),
		refused("change with a wrong old password", r.spec(wire.OpChange, protocol.Target{UserPrincipalName: wrongOld.UPN}, pw(), pw()), wire.CodeWrongOldPassword, "", wrongOld),
		refused("change of a locked account", r.spec(wire.OpChange, protocol.Target{UserPrincipalName: lockedChange.UPN}, pw(), lockedChange.Password), wire.CodeAccountLocked, "", lockedChange),
		refused("reset of a disabled account", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.Disabled.UPN}, pw(), nil), wire.CodeAccountDisabled, "", s.Disabled),
		refused("reset of an unknown account", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: dom.UniqueName("nobody") + "@" + dom.DC.Realm()}, pw(), nil), wire.CodeUserNotFound, "", nil),
		refused("reset of an immutableId two accounts carry", r.spec(wire.OpReset, protocol.Target{ImmutableID: shared}, pw(), nil), wire.CodeUserAmbiguous, "", nil),
		refused("reset of a Domain Admin (adminCount=1)", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.DomainAdmin.UPN}, pw(), nil), wire.CodeProtectedAccount, "", s.DomainAdmin),
		refused("reset of a nested member of Domain Admins", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.Nested.UPN}, pw(), nil), wire.CodeProtectedAccount, "", s.Nested),
		refused("reset outside the scope", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.OutOfScope.UPN}, pw(), nil), wire.CodeOutOfScope, "", s.OutOfScope),
		refused("reset in scope but not delegated", r.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.NotDelegated.UPN}, pw(), nil), wire.CodeAccessDenied, "", s.NotDelegated),
		refused("request past its expiresAt", expired, wire.CodeExpired, "", nil),
	}
	var outs []outcome
	for _, c := range cases {
		m, err := r.send.Send(ctx, c.spec)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		c.msg = m
		outs = append(outs, c.outcome)
	}
	outs = append(outs, r.rejectedMessages()...)
	r.verify(outs, agent)

	// The directory agrees with the results.
	wantBind := func(u *testbed.User, p *secret.Secret, code string) {
		t.Helper()
		if got := testbed.BindCode(dom.CheckPassword(ctx, u, p)); got != code {
			t.Errorf("%s: bind %q, want %q", u.SAMAccountName, got, code)
		}
	}
	wantBind(byUPN, upnPw, "")
	wantBind(byGUID, guidPw, "773") // must change at next logon
	wantBind(byAnchor, anchorPw, "")
	wantBind(unlockMe, unlockMe.Password, "")
	wantBind(changer, chgPw, "")
	for _, u := range []*testbed.User{policy, young, wrongOld, s.Disabled, s.DomainAdmin, s.Nested, s.OutOfScope, s.NotDelegated, twinA, twinB} {
		want := ""
		if u == s.Disabled {
			want = "533"
		}
		wantBind(u, u.Password, want)
	}
	wantBind(lockedChange, lockedChange.Password, "775")

	// Password history: changing back to the previous password.
	m := r.sendAll(r.spec(wire.OpChange, protocol.Target{UserPrincipalName: changer.UPN}, changer.Password, chgPw))[0]
	r.verify([]outcome{{what: "change back to a password in the history", msg: m, op: "change", code: wire.CodePasswordPolicy,
		detail: wire.DetailHistory, result: true, settle: "complete", event: "result", dn: changer.DN}}, agent)
	wantBind(changer, chgPw, "")

	// The same through the CLI, as an admin would try it.
	r.viaCLI(agent, byUPN, s.DomainAdmin)
	if bad := r.send.Bad(); len(bad) > 0 {
		t.Errorf("results that did not verify: %v", bad)
	}
}

// userWith creates a Staff account whose mS-DS-ConsistencyGuid holds the
// bytes of immutableID.
func (r *run) userWith(prefix, immutableID string) *testbed.User {
	r.t.Helper()
	raw, err := base64.StdEncoding.DecodeString(immutableID)
	if err != nil {
		r.t.Fatal(err)
	}
	u, err := dom.AddUserSpec(r.ctx, dom.UniqueName(prefix), dom.Staff, func(s *sambadc.UserSpec) {
		s.Attrs = map[string][]string{"mS-DS-ConsistencyGuid": {string(raw)}}
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

func randomID(t *testing.T) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b[:])
}

// rejectedMessages sends the requests the agent must refuse before any
// directory work: sealed to a key it does not hold (invalid_request, with
// a result), signed by an untrusted sender (unauthenticated) and of the
// wrong content type (malformed), neither answered.
func (r *run) rejectedMessages() []outcome {
	r.t.Helper()
	other, err := testbed.NewKeys(r.dir + "/other-keys")
	if err != nil {
		r.t.Fatal(err)
	}
	target := protocol.Target{UserPrincipalName: dom.Sample.InScope.UPN}
	build := func(signer *protocol.SigningKey, agent *protocol.AgentPublicKey) protocol.Message {
		spec := r.spec(wire.OpReset, target, dom.Secrets.New(), nil)
		m, err := protocol.BuildRequest(signer, agent, spec)
		if err != nil {
			r.t.Fatal(err)
		}
		if err := r.send.SendMessage(r.ctx, m); err != nil {
			r.t.Fatal(err)
		}
		return m
	}
	unknownKey := build(r.keys.Signer, other.Agent)
	untrusted := build(other.Signer, r.keys.Agent)
	wrongType := r.spec(wire.OpUnlock, target, nil, nil)
	wt, err := protocol.BuildRequest(r.keys.Signer, r.keys.Agent, wrongType)
	if err != nil {
		r.t.Fatal(err)
	}
	wt.ContentType = "application/json"
	if err := r.send.SendMessage(r.ctx, wt); err != nil {
		r.t.Fatal(err)
	}
	return []outcome{
		{what: "secret sealed to a key the agent does not hold", msg: unknownKey, op: "reset", code: wire.CodeInvalidRequest,
			result: true, settle: "deadletter", event: "dead_lettered", rule: "names no decryption key"},
		{what: "signed by an untrusted sender", msg: untrusted, code: "unauthenticated", settle: "deadletter",
			event: "dead_lettered", rule: "is not trusted"},
		{what: "wrong content type", msg: wt, code: "malformed", settle: "deadletter", event: "dead_lettered", rule: "content type"},
	}
}

// viaCLI resets ok with `wbagent send` (exit 0) and is refused for the
// protected admin (exit 3), through the session reply queue on session
// queues.
func (r *run) viaCLI(agent *testbed.Agent, ok, protected *testbed.User) {
	r.t.Helper()
	args := []string{"--queue", requestQueue, "--reply-queue", replyCLI, "--op", "reset", "--password-stdin", "--wait", "60s"}
	if r.sessions {
		args = []string{"--queue", requestQueue, "--reply-queue", replySessions, "--session", "--op", "reset", "--password-stdin", "--wait", "60s"}
	}
	var outs []outcome
	for _, c := range []struct {
		u    *testbed.User
		code string
		exit int
	}{{ok, wire.CodeOK, 0}, {protected, wire.CodeProtectedAccount, 3}} {
		pw := dom.Secrets.New()
		res, err := testbed.SendCLI(r.ctx, bin, r.bus, r.keys, pw.Reveal()+"\n", append(args, "--target", "userPrincipalName="+c.u.UPN)...)
		if err != nil || res.Result == nil || res.ExitCode != c.exit || res.Result.Code != c.code {
			r.t.Fatalf("wbagent send for %s: %+v %v", c.u.UPN, res, err)
		}
		if strings.Contains(res.Stdout+res.Stderr, pw.Reveal()) {
			r.t.Fatal("wbagent send printed the password")
		}
		if c.code == wire.CodeOK {
			if err := dom.CheckPassword(r.ctx, c.u, pw); err != nil {
				r.t.Fatalf("after wbagent send: %v", err)
			}
		}
		outs = append(outs, outcome{what: "wbagent send " + c.code, msg: protocol.Message{MessageID: res.Result.ID}, op: "reset",
			code: c.code, settle: "complete", event: "result", dn: c.u.DN, replyElsewhere: true})
	}
	r.verify(outs, agent)
}
