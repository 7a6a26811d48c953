package writeback

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/ledger"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Every directory answer of §6 ends in its result and a completed message.
func TestDirectoryCodesAreAnsweredAndCompleted(t *testing.T) {
	cases := []struct{ code, detail string }{
		{wire.CodeOK, ""},
		{wire.CodePasswordPolicy, wire.DetailTooShort},
		{wire.CodePasswordPolicy, wire.DetailComplexity},
		{wire.CodePasswordPolicy, wire.DetailHistory},
		{wire.CodePasswordPolicy, wire.DetailTooYoung},
		{wire.CodePasswordPolicy, wire.DetailPolicy},
		{wire.CodeWrongOldPassword, ""},
		{wire.CodeAccountLocked, ""},
		{wire.CodeAccountDisabled, ""},
		{wire.CodeUserNotFound, ""},
		{wire.CodeUserAmbiguous, ""},
		{wire.CodeProtectedAccount, ""},
		{wire.CodeOutOfScope, ""},
		{wire.CodeAccessDenied, ""},
	}
	for _, c := range cases {
		t.Run(c.code+"/"+c.detail, func(t *testing.T) {
			f := newFixture(t)
			f.dir.script = []step{{Applied: Applied{Code: c.code, Detail: c.detail, ADCode: "0000052D"}}}
			out := f.handle(f.request(nil), nil)
			if out.Settle != Complete {
				t.Fatalf("settle = %v, want complete (err %v)", out.Settle, out.Err)
			}
			r := f.result(out)
			if r.Code != c.code || r.Detail != c.detail {
				t.Fatalf("result %s/%s, want %s/%s", r.Code, r.Detail, c.code, c.detail)
			}
			if want := protocol.ReasonFor(wire.OpReset, c.code, c.detail); r.Reason != want {
				t.Fatalf("reason %q, want %q", r.Reason, want)
			}
			if r.Agent != "dc-test-1" || out.ReplyTo != "replies" || out.Reply.CorrelationID != r.ID {
				t.Fatalf("reply addressing wrong: agent %q replyTo %q correlation %q id %q", r.Agent, out.ReplyTo, out.Reply.CorrelationID, r.ID)
			}
			rec := f.aud.last(t)
			if rec.Event != audit.EventResult || rec.Code != c.code || rec.Detail != c.detail || rec.RequestID != r.ID {
				t.Fatalf("audit record %+v does not match the result", rec)
			}
			if got, _ := f.led.Get(r.ID); got.State != ledger.Done {
				t.Fatalf("ledger state %v, want done", got.State)
			}
		})
	}
}

func TestAuditRecordDescribesTheRequest(t *testing.T) {
	f := newFixture(t)
	m := f.request(func(s *protocol.RequestSpec) {
		s.Target = protocol.Target{SAMAccountName: "alice", Domain: "CORP"}
	})
	f.clock.Advance(1500 * time.Millisecond) // queue wait
	out := f.h.Handle(context.Background(), Delivery{Message: m, DeliveryCount: 1, EnqueuedAt: t0})
	rec := f.aud.last(t)
	want := audit.Record{
		Event: audit.EventResult, RequestID: m.MessageID, Op: "reset",
		Target: map[string]string{"sAMAccountName": "alice", "domain": "CORP"},
		DN:     "CN=Alice,OU=Staff,DC=corp,DC=example,DC=test", ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4",
		Actor:     &audit.Actor{ID: "helpdesk@contoso.example", Kind: "admin", IP: "203.0.113.7"},
		SenderKID: f.sender.KID(), Code: "ok", DC: "dc1.corp.example.test", Attempts: 1, Agent: "dc-test-1",
	}
	rec.Time, rec.DurationMs = time.Time{}, 0
	g, _ := json.Marshal(rec)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("audit record\n got %s\nwant %s", g, w)
	}
	if out.QueueWait != 1500*time.Millisecond || out.Op != "reset" || out.RequestID != m.MessageID || out.Attempts != 1 {
		t.Fatalf("outcome measurements wrong: %+v", out)
	}
}

func TestChangeAndUnlockReachTheDirectory(t *testing.T) {
	f := newFixture(t)
	m := f.request(func(s *protocol.RequestSpec) {
		s.Op, s.Old, s.New, s.MustChange = wire.OpChange, secret.FromString("Old-Passw0rd!"), secret.FromString("New-Passw0rd!"), false
	})
	if out := f.handle(m, nil); out.Settle != Complete {
		t.Fatalf("change: settle %v", out.Settle)
	}
	u := f.request(func(s *protocol.RequestSpec) { s.Op, s.New = wire.OpUnlock, nil })
	out := f.handle(u, nil)
	if r := f.result(out); r.Code != "ok" || r.Reason != protocol.ReasonFor(wire.OpUnlock, "ok", "") {
		t.Fatalf("unlock result %+v", r)
	}
	c0, c1 := f.dir.calls[0], f.dir.calls[1]
	if c0.Op != wire.OpChange || c1.Op != wire.OpUnlock || !c1.Unlock || f.dir.passwords[0] != "New-Passw0rd!" {
		t.Fatalf("directory saw %+v / %+v", c0, c1)
	}
	// The request's passwords are wiped once handled.
	if !c0.New.IsEmpty() || !c0.Old.IsEmpty() {
		t.Fatal("passwords were not destroyed after the write")
	}
}

func TestRejectedMessages(t *testing.T) {
	f := newFixture(t)
	other, _ := protocol.GenerateSigningKey()
	otherAgent, _ := protocol.GenerateDecryptionKey(protocol.SuiteX25519)
	cases := []struct {
		name        string
		msg         func() protocol.Message
		settle      Settle
		reason      string // dead-letter reason
		resultCode  string // "" = no result
		auditEvent  string
		descContain string
	}{
		{"malformed content type", func() protocol.Message {
			m := f.request(nil)
			m.ContentType = "application/json"
			return m
		}, DeadLetter, "malformed", "", audit.EventDeadLettered, "content type"},
		{"malformed too large", func() protocol.Message {
			m := f.request(nil)
			m.Body = append(m.Body, make([]byte, protocol.MaxBodySize)...)
			return m
		}, DeadLetter, "malformed", "", audit.EventDeadLettered, "bytes"},
		{"unknown sender", func() protocol.Message {
			m := f.request(nil)
			m.ApplicationProperties[protocol.PropSender] = other.KID()
			m.ApplicationProperties[protocol.PropSignature] = other.Sign(m.Body)
			return m
		}, DeadLetter, "unauthenticated", "", audit.EventDeadLettered, "not trusted"},
		{"bad signature", func() protocol.Message {
			m := f.request(nil)
			m.ApplicationProperties[protocol.PropSignature] = other.Sign(m.Body)
			return m
		}, DeadLetter, "unauthenticated", "", audit.EventDeadLettered, "signature"},
		{"sealed for another agent", func() protocol.Message {
			spec := protocol.RequestSpec{Op: wire.OpReset, Target: protocol.Target{UserPrincipalName: "bob@corp.example.test"},
				Actor: protocol.Actor{ID: "bob", Kind: "self"}, IssuedAt: f.clock.Now(), ExpiresAt: f.clock.Now().Add(time.Minute),
				New: secret.FromString("Whatever-1234"), ReplyTo: "replies"}
			m, err := protocol.BuildRequest(f.sender, otherAgent.Public(), spec)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}, DeadLetter, "invalid_request", "invalid_request", audit.EventDeadLettered, "decryption key"},
		{"issued in the future", func() protocol.Message {
			return f.request(func(s *protocol.RequestSpec) {
				s.IssuedAt, s.ExpiresAt = f.clock.Now().Add(10*time.Minute), f.clock.Now().Add(12*time.Minute)
			})
		}, DeadLetter, "invalid_request", "invalid_request", audit.EventDeadLettered, "future"},
		{"no id anywhere", func() protocol.Message {
			m := f.request(nil)
			m.MessageID = ""
			m.Body = []byte(`{"v":1}`)
			m.ApplicationProperties[protocol.PropSignature] = f.sender.Sign(m.Body)
			return m
		}, DeadLetter, "invalid_request", "", audit.EventDeadLettered, ""},
		{"expired", func() protocol.Message {
			return f.request(func(s *protocol.RequestSpec) {
				s.IssuedAt, s.ExpiresAt = f.clock.Now().Add(-10*time.Minute), f.clock.Now().Add(-time.Minute)
			})
		}, Complete, "", "expired", audit.EventResult, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := f.dir.applyCount()
			m := c.msg()
			out := f.handle(m, nil)
			if out.Settle != c.settle || out.DeadLetterReason != c.reason {
				t.Fatalf("settle %v reason %q, want %v %q (err %v)", out.Settle, out.DeadLetterReason, c.settle, c.reason, out.Err)
			}
			if !strings.Contains(out.DeadLetterDescription, c.descContain) {
				t.Fatalf("dead-letter description %q does not mention %q", out.DeadLetterDescription, c.descContain)
			}
			if c.resultCode == "" && out.Reply != nil {
				t.Fatalf("an untrusted message got a result")
			}
			if c.resultCode != "" {
				if r := f.result(out); r.Code != c.resultCode || r.ID != m.MessageID {
					t.Fatalf("result %s for %s, want %s for %s", r.Code, r.ID, c.resultCode, m.MessageID)
				}
			}
			if f.dir.applyCount() != before {
				t.Fatal("a rejected request reached the directory")
			}
			rec := f.aud.last(t)
			if rec.Event != c.auditEvent || rec.RequestID != m.MessageID {
				t.Fatalf("audit %+v, want event %s", rec, c.auditEvent)
			}
			if c.reason != "" && (rec.Code != c.reason || rec.Detail != out.DeadLetterDescription) {
				t.Fatalf("audit of a dead-letter: code %q detail %q", rec.Code, rec.Detail)
			}
		})
	}
}

func TestNoReplyToSendsNoResultButCompletes(t *testing.T) {
	f := newFixture(t)
	out := f.handle(f.request(func(s *protocol.RequestSpec) { s.ReplyTo = "" }), nil)
	if out.Reply != nil || out.Settle != Complete || out.Code != "ok" {
		t.Fatalf("outcome %+v", out)
	}
}

func TestReplyGoesToReplyToSession(t *testing.T) {
	f := newFixture(t)
	out := f.handle(f.request(func(s *protocol.RequestSpec) { s.ReplyToSessionID = "portal-7" }), nil)
	if out.Reply.SessionID != "portal-7" {
		t.Fatalf("reply session %q", out.Reply.SessionID)
	}
}

func TestReplayResendsTheFirstResult(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodePasswordPolicy, Detail: wire.DetailHistory}}, {Applied: Applied{Code: wire.CodeOK}, writes: true}}
	m := f.request(nil)
	first := f.result(f.handle(m, nil))
	f.clock.Advance(time.Minute)
	out := f.handle(m, nil)
	second := f.result(out)
	if f.dir.applyCount() != 1 {
		t.Fatalf("directory written %d times, want 1", f.dir.applyCount())
	}
	if *first != *second || out.Settle != Complete {
		t.Fatalf("replay gave %+v, first was %+v", second, first)
	}
	if rec := f.aud.last(t); rec.Event != audit.EventReplayed || rec.Code != wire.CodePasswordPolicy {
		t.Fatalf("replay audit %+v", rec)
	}
	// Even once expired, a redelivery gets the first result, not `expired`.
	f.clock.Advance(time.Hour)
	if r := f.result(f.handle(m, nil)); *r != *first {
		t.Fatalf("expired redelivery got %+v", r)
	}
}

// The result was recorded but its audit line never written (a crash, a
// full disk): the redelivery writes the missing result line, marked
// recovered, instead of only a "replayed" one, and writes nothing to the
// directory; later redeliveries are plain replays.
func TestUnauditedResultIsAuditedOnRedelivery(t *testing.T) {
	f := newFixture(t)
	m := f.request(nil)
	f.aud.fail = 1 << 30
	if out := f.handle(m, nil); out.Settle != Abandon || !out.AuditFailed {
		t.Fatalf("first delivery with no audit trail: %+v", out)
	}
	if rec, _ := f.led.Get(m.MessageID); rec.State != ledger.Done || rec.Audited {
		t.Fatalf("ledger after the failed audit: %+v, want done and not audited", rec)
	}
	f.aud.fail = 0
	out := f.handle(m, nil)
	if r := f.result(out); r.Code != wire.CodeOK || out.Settle != Complete || f.dir.applyCount() != 1 {
		t.Fatalf("redelivery: %s/%v after %d directory writes", r.Code, out.Settle, f.dir.applyCount())
	}
	if rec := f.aud.last(t); rec.Event != audit.EventResult || rec.Detail != AuditDetailRecovered || rec.Code != wire.CodeOK {
		t.Fatalf("redelivery audit %+v, want the missing result line", rec)
	}
	if rec, _ := f.led.Get(m.MessageID); !rec.Audited {
		t.Fatalf("ledger after the audit line: %+v, want audited", rec)
	}
	f.handle(m, nil)
	if rec := f.aud.last(t); rec.Event != audit.EventReplayed {
		t.Fatalf("third delivery audit %+v, want replayed", rec)
	}
}

func TestTransientFailuresRetryWithBackoff(t *testing.T) {
	f := newFixture(t)
	down := step{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}}
	f.dir.script = []step{down, down, down, {Applied: Applied{Code: wire.CodeOK}, writes: true}}
	out := f.handle(f.request(nil), nil)
	if r := f.result(out); r.Code != "ok" {
		t.Fatalf("result %s", r.Code)
	}
	if out.Attempts != 4 || f.dir.applyCount() != 4 {
		t.Fatalf("attempts %d, directory calls %d", out.Attempts, f.dir.applyCount())
	}
	// Jitter 0.5: three-quarters of 500ms, 1s, 2s.
	want := []time.Duration{375 * time.Millisecond, 750 * time.Millisecond, 1500 * time.Millisecond}
	if len(f.clock.slept) != 3 || f.clock.slept[0] != want[0] || f.clock.slept[1] != want[1] || f.clock.slept[2] != want[2] {
		t.Fatalf("waits %v, want %v", f.clock.slept, want)
	}
	// The failures were not indeterminate (nothing was sent): no pwdLastSet
	// read is needed before repeating.
	if f.dir.pwdCalls != 0 {
		t.Fatalf("pwdLastSet read %d times, want 0", f.dir.pwdCalls)
	}
	if out.DirectoryTime < 2625*time.Millisecond {
		t.Fatalf("directory time %v does not include the waits", out.DirectoryTime)
	}
}

func TestBackoffIsExponentialCappedAndJittered(t *testing.T) {
	o := wired()
	o.BackoffInitial = time.Second
	h, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range []float64{0, 0.999} {
		h.o.Jitter = func() float64 { return j }
		for n, step := range []time.Duration{1, 2, 4, 8, 8, 8} {
			step *= time.Second
			got := h.backoff(n + 1)
			if got < step/2 || got >= step {
				t.Fatalf("jitter %v retry %d: wait %v outside [%v, %v)", j, n+1, got, step/2, step)
			}
		}
	}
}

func TestRetryBudgetSpentAbandonsThenExpires(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}}}
	m := f.request(nil)
	out := f.handle(m, nil)
	if out.Settle != Abandon || out.Reply != nil || out.Code != wire.CodeDirectoryUnavailable {
		t.Fatalf("outcome %+v, want abandon directory_unavailable without reply", out)
	}
	if s := f.clock.totalSlept(); s > 45*time.Second || s < 40*time.Second {
		t.Fatalf("waited %v in all, want the 45s budget", s)
	}
	if rec := f.aud.last(t); rec.Event != audit.EventAbandoned || rec.Code != wire.CodeDirectoryUnavailable {
		t.Fatalf("audit %+v", rec)
	}
	// Every attempt failed before anything reached the DC: no applying
	// record is left for the redelivery to disprove.
	if rec, _ := f.led.Get(m.MessageID); rec.State != ledger.Unknown {
		t.Fatalf("ledger %+v, want no record after attempts that wrote nothing", rec)
	}
	// Redelivered while the request lives: the directory is back.
	f.dir.script = nil
	calls := f.dir.applyCount()
	if r := f.result(f.handle(m, nil)); r.Code != "ok" || f.dir.applyCount() != calls+1 {
		t.Fatalf("redelivery: %s after %d calls", r.Code, f.dir.applyCount()-calls)
	}
}

// A DC that stays down past a request's expiry: the redelivery after expiry
// is answered `expired` at once, without a pwdLastSet read the dead DC
// could not answer, since no earlier attempt reached it.
func TestExpiredAfterDirectoryStayedDown(t *testing.T) {
	for _, sessions := range []bool{false, true} {
		f := newFixture(t)
		f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}}}
		f.dir.pwdErrs = 1 << 30 // the DC answers nothing at all
		m := f.request(func(s *protocol.RequestSpec) {
			s.Op, s.Old = wire.OpChange, secret.FromString("Old-Passw0rd!")
		})
		var st SessionState
		var fs *fakeSession
		if sessions {
			fs = &fakeSession{}
			st = fs
		}
		if out := f.handle(m, st); out.Settle != Abandon {
			t.Fatalf("sessions=%v: first delivery: %v", sessions, out.Settle)
		}
		if fs != nil {
			if ss := fs.decoded(t, f.seal, m); len(ss.Records) != 0 {
				t.Fatalf("sessions=%v: session state keeps %+v after attempts that wrote nothing", sessions, ss.Records)
			}
		}
		f.clock.Advance(10 * time.Minute)
		out := f.handle(m, st)
		if r := f.result(out); r.Code != wire.CodeExpired || out.Settle != Complete || f.dir.pwdCalls != 0 {
			t.Fatalf("sessions=%v: after expiry got %s/%v with %d pwdLastSet reads, want expired/complete and none", sessions, r.Code, out.Settle, f.dir.pwdCalls)
		}
	}
}

func TestExpiredWhileRetryingIsAnsweredExpired(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}}}
	m := f.request(func(s *protocol.RequestSpec) { s.ExpiresAt = f.clock.Now().Add(10 * time.Second) })
	out := f.handle(m, nil)
	if r := f.result(out); r.Code != wire.CodeExpired || out.Settle != Complete {
		t.Fatalf("got %s/%v, want expired/complete", r.Code, out.Settle)
	}
}

func TestExpiredRedeliveryAfterAbandon(t *testing.T) {
	for _, landed := range []bool{false, true} {
		f := newFixture(t)
		// The first attempt may or may not write, and then neither the
		// directory nor pwdLastSet answers until the budget is spent.
		f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true, Indeterminate: true}, writes: landed}}
		f.dir.pwdErrs = 1 << 30
		m := f.request(func(s *protocol.RequestSpec) {
			s.Op, s.Old = wire.OpChange, secret.FromString("Old-Passw0rd!")
		})
		if out := f.handle(m, nil); out.Settle != Abandon {
			t.Fatalf("first delivery: %v", out.Settle)
		}
		f.dir.pwdErrs = 0
		calls := f.dir.applyCount()
		f.clock.Advance(10 * time.Minute) // expired now
		out := f.handle(m, nil)
		want := wire.CodeExpired
		if landed {
			want = wire.CodeOK
		}
		if r := f.result(out); r.Code != want {
			t.Fatalf("landed=%v: result %s, want %s", landed, r.Code, want)
		}
		if f.dir.applyCount() != calls {
			t.Fatal("an expired request was written")
		}
	}
}

// A change whose write took effect although the directory answered with a
// transient failure (timeout after the modify) must not be repeated.
func TestChangeThatLandedIsNotRepeated(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true, Indeterminate: true}, writes: true}, {Applied: Applied{Code: wire.CodeWrongOldPassword}}}
	m := f.request(func(s *protocol.RequestSpec) {
		s.Op, s.Old = wire.OpChange, secret.FromString("Old-Passw0rd!")
	})
	out := f.handle(m, nil)
	if r := f.result(out); r.Code != "ok" {
		t.Fatalf("result %s, want ok", r.Code)
	}
	if f.dir.applyCount() != 1 {
		t.Fatalf("written %d times", f.dir.applyCount())
	}
	if rec := f.aud.last(t); rec.Detail != AuditDetailRecovered {
		t.Fatalf("audit detail %q", rec.Detail)
	}
}

// A crash between the applying record and the result: the redelivery
// decides from pwdLastSet (change, reset) or repeats (unlock).
func TestApplyingInLedgerAfterCrash(t *testing.T) {
	cases := []struct {
		name       string
		op         wire.Op
		landed     bool
		wantWrites int
		wantPwd    bool
	}{
		{"change landed", wire.OpChange, true, 0, true},
		{"change not landed", wire.OpChange, false, 1, true},
		{"reset landed", wire.OpReset, true, 0, true},
		{"reset not landed", wire.OpReset, false, 1, true},
		{"unlock", wire.OpUnlock, false, 1, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			m := f.request(func(s *protocol.RequestSpec) {
				s.Op = c.op
				switch c.op {
				case wire.OpChange:
					s.Old = secret.FromString("Old-Passw0rd!")
				case wire.OpUnlock:
					s.New = nil
				}
			})
			// The crashed delivery: claimed at t0, maybe wrote, never answered.
			if _, err := f.led.MarkApplying(m.MessageID, f.clock.Now()); err != nil {
				t.Fatal(err)
			}
			f.led.Release(m.MessageID)
			f.clock.Advance(time.Second)
			if c.landed {
				f.dir.pwdLastSet = f.clock.Now()
			}
			f.clock.Advance(time.Second)
			out := f.handle(m, nil)
			if r := f.result(out); r.Code != "ok" {
				t.Fatalf("result %s", r.Code)
			}
			if f.dir.applyCount() != c.wantWrites || (f.dir.pwdCalls > 0) != c.wantPwd {
				t.Fatalf("writes %d (want %d), pwdLastSet reads %d", f.dir.applyCount(), c.wantWrites, f.dir.pwdCalls)
			}
		})
	}
}

func TestSessionStateWrittenAroundTheWrite(t *testing.T) {
	f := newFixture(t)
	sess := &fakeSession{}
	m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
	f.dir.onApply = func(context.Context) {
		ss := sess.decoded(t, f.seal, m)
		if rec, ok := ss.Find(m.MessageID); !ok || rec.State != ledger.Applying || !rec.At.Equal(t0) {
			t.Errorf("at the directory write the session state holds %+v, want applying at %v", rec, t0)
		}
	}
	out := f.handle(m, sess)
	r := f.result(out)
	rec, ok := sess.decoded(t, f.seal, m).Find(m.MessageID)
	if !ok || rec.State != ledger.Done {
		t.Fatalf("session state after the write: %+v", rec)
	}
	if got, _ := protocol.ParseResult(rec.Result); *got != *r {
		t.Fatalf("session state result %+v, sent %+v", got, r)
	}
}

// Another agent answered the request and crashed before completing it:
// this agent resends that result and writes nothing.
func TestSessionStateDoneFromAnotherAgentIsReplayed(t *testing.T) {
	f := newFixture(t)
	m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
	first := protocol.NewResult(m.MessageID, wire.OpReset, wire.CodeOK, "", "dc-other-2", t0)
	body, _ := first.MarshalJSON()
	ss := &ledger.SessionState{}
	ss.Put(ledger.Record{ID: m.MessageID, State: ledger.Done, Result: body})
	sess := &fakeSession{state: f.sealed(ss, m)}
	out := f.handle(m, sess)
	if r := f.result(out); *r != first {
		t.Fatalf("replayed %+v, want %+v", r, first)
	}
	if f.dir.applyCount() != 0 || f.aud.last(t).Event != audit.EventReplayed {
		t.Fatal("a replay wrote to the directory or was not audited as replayed")
	}
	if rec, _ := f.led.Get(m.MessageID); rec.State != ledger.Done {
		t.Fatalf("the replayed result was not kept locally: %+v", rec)
	}
}

// Another agent crashed while applying a change: pwdLastSet decides.
func TestSessionStateApplyingFromAnotherAgent(t *testing.T) {
	for _, landed := range []bool{true, false} {
		f := newFixture(t)
		m := f.request(func(s *protocol.RequestSpec) {
			s.Session, s.Op, s.Old = true, wire.OpChange, secret.FromString("Old-Passw0rd!")
		})
		ss := &ledger.SessionState{}
		ss.Put(ledger.Record{ID: m.MessageID, State: ledger.Applying, At: t0.Add(-time.Minute)})
		state := f.sealed(ss, m)
		if landed {
			f.dir.pwdLastSet = t0.Add(-30 * time.Second)
		}
		out := f.handle(m, &fakeSession{state: state})
		if r := f.result(out); r.Code != "ok" {
			t.Fatalf("landed=%v: %s", landed, r.Code)
		}
		wantWrites := 1
		if landed {
			wantWrites = 0
		}
		if f.dir.applyCount() != wantWrites {
			t.Fatalf("landed=%v: %d writes", landed, f.dir.applyCount())
		}
	}
}

func TestSessionStateFailures(t *testing.T) {
	t.Run("transient read", func(t *testing.T) {
		f := newFixture(t)
		out := f.handle(f.request(func(s *protocol.RequestSpec) { s.Session = true }), &fakeSession{getErrs: 2})
		if out.Settle != Complete {
			t.Fatalf("settle %v: %v", out.Settle, out.Err)
		}
	})
	t.Run("write fails for good", func(t *testing.T) {
		f := newFixture(t)
		m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
		out := f.handle(m, &fakeSession{setErrs: 1 << 30})
		if out.Settle != Abandon || out.Code != wire.CodeInternalError || f.dir.applyCount() != 0 {
			t.Fatalf("outcome %+v after %d writes; want abandon before any write", out, f.dir.applyCount())
		}
		// The claim was released: the next delivery proceeds.
		if out := f.handle(m, &fakeSession{}); out.Settle != Complete {
			t.Fatalf("redelivery: %v %v", out.Settle, out.Err)
		}
	})
	t.Run("unknown version is treated as absent", func(t *testing.T) {
		f := newFixture(t)
		m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
		sess := &fakeSession{state: []byte("wbagent-session-state 9\nwhatever\n")}
		if out := f.handle(m, sess); out.Settle != Complete || f.dir.applyCount() != 1 {
			t.Fatalf("outcome %+v after %d writes", out, f.dir.applyCount())
		}
		sess.decoded(t, f.seal, m)
	})
	t.Run("garbage state is overwritten", func(t *testing.T) {
		f := newFixture(t)
		m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
		sess := &fakeSession{state: []byte("\x00garbage")}
		if out := f.handle(m, sess); out.Settle != Complete {
			t.Fatalf("settle %v", out.Settle)
		}
		sess.decoded(t, f.seal, m)
	})
}

// Session state that anyone holding Listen rights could have written — no
// MAC (an older agent's form), a MAC under another key, a record sealed
// for another session — is ignored: the request is applied once and
// answered with the directory's own result, and the audit trail shows the
// refused record before the result.
func TestForgedSessionStateIsIgnored(t *testing.T) {
	other, err := protocol.GenerateDecryptionKey(protocol.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	otherSeal, err := NewSessionSeal([]*protocol.DecryptionKey{other})
	if err != nil {
		t.Fatal(err)
	}
	forgedDone := func(m protocol.Message) ledger.Record {
		res := protocol.NewResult(m.MessageID, wire.OpReset, wire.CodeUserNotFound, "", "attacker", t0)
		body, _ := res.MarshalJSON()
		return ledger.Record{ID: m.MessageID, State: ledger.Done, Result: body}
	}
	forgedApplying := func(m protocol.Message) ledger.Record {
		return ledger.Record{ID: m.MessageID, State: ledger.Applying, At: t0.Add(-time.Hour)}
	}
	forms := map[string]func(f *fixture, m protocol.Message, r ledger.Record) []byte{
		"version 1, no MAC": func(_ *fixture, _ protocol.Message, r ledger.Record) []byte {
			ss := &ledger.SessionState{}
			ss.Put(r)
			b, _ := ss.Encode()
			return b
		},
		"bare record": func(_ *fixture, _ protocol.Message, r ledger.Record) []byte {
			return []byte(r.String() + "\n")
		},
		"MAC under another key": func(_ *fixture, m protocol.Message, r ledger.Record) []byte {
			ss := &ledger.SessionState{}
			ss.Put(r)
			b, _ := otherSeal.Encode(ss, ledger.SessionBinding{Queue: testQueue, SessionID: m.SessionID})
			return b
		},
		"sealed for another session": func(f *fixture, _ protocol.Message, r ledger.Record) []byte {
			ss := &ledger.SessionState{}
			ss.Put(r)
			b, _ := f.seal.Encode(ss, ledger.SessionBinding{Queue: testQueue, SessionID: "someone-else"})
			return b
		},
		"sealed for another queue": func(f *fixture, m protocol.Message, r ledger.Record) []byte {
			ss := &ledger.SessionState{}
			ss.Put(r)
			b, _ := f.seal.Encode(ss, ledger.SessionBinding{Queue: "other-queue", SessionID: m.SessionID})
			return b
		},
		"MAC of another record": func(f *fixture, m protocol.Message, r ledger.Record) []byte {
			// A genuine line for an applying record, its text swapped.
			ss := &ledger.SessionState{}
			ss.Put(ledger.Record{ID: m.MessageID, State: ledger.Applying, At: t0.Add(-time.Minute)})
			b := string(f.sealed(ss, m))
			i := strings.Index(b, " applying ")
			return []byte(b[:i+1] + r.String() + "\n")
		},
	}
	for name, form := range forms {
		for kind, rec := range map[string]func(protocol.Message) ledger.Record{"done": forgedDone, "applying": forgedApplying} {
			t.Run(name+"/"+kind, func(t *testing.T) {
				f := newFixture(t)
				// pwdLastSet after the forged applying time: trusting it
				// would answer "recovered" without writing.
				f.dir.pwdLastSet = t0.Add(-time.Minute)
				m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
				sess := &fakeSession{state: form(f, m, rec(m))}
				out := f.handle(m, sess)
				if r := f.result(out); r.Code != wire.CodeOK || r.Agent != "dc-test-1" || out.Settle != Complete {
					t.Fatalf("answered %+v (%v); want this agent's ok", r, out.Settle)
				}
				if n := f.dir.applyCount(); n != 1 {
					t.Fatalf("%d directory writes, want 1", n)
				}
				f.aud.mu.Lock()
				recs := append([]audit.Record(nil), f.aud.records...)
				f.aud.mu.Unlock()
				if len(recs) != 2 || recs[0].Event != EventStateRefused || recs[0].Code != CodeStateUnauthenticated ||
					!strings.Contains(recs[0].Detail, m.MessageID) || recs[1].Event != audit.EventResult || recs[1].Detail != "" {
					t.Fatalf("audit records %+v; want the refused state, then the result", recs)
				}
				if got, ok := sess.decoded(t, f.seal, m).Find(m.MessageID); !ok || got.State != ledger.Done {
					t.Fatalf("session state after: %+v", got)
				}
			})
		}
	}
}

// A record sealed by an agent that holds the new and the old decryption
// key verifies at an agent that holds only the old one (key rotation).
func TestSessionStateAcrossKeyRotation(t *testing.T) {
	f := newFixture(t)
	newer, err := protocol.GenerateDecryptionKey(protocol.SuiteX25519)
	if err != nil {
		t.Fatal(err)
	}
	both, err := NewSessionSeal([]*protocol.DecryptionKey{newer, f.agentDec})
	if err != nil {
		t.Fatal(err)
	}
	m := f.request(func(s *protocol.RequestSpec) { s.Session = true })
	first := protocol.NewResult(m.MessageID, wire.OpReset, wire.CodeOK, "", "dc-other-2", t0)
	body, _ := first.MarshalJSON()
	ss := &ledger.SessionState{}
	ss.Put(ledger.Record{ID: m.MessageID, State: ledger.Done, Result: body})
	state, err := both.Encode(ss, ledger.SessionBinding{Queue: testQueue, SessionID: m.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	out := f.handle(m, &fakeSession{state: state})
	if r := f.result(out); *r != first || f.dir.applyCount() != 0 {
		t.Fatalf("replayed %+v after %d writes, want %+v and none", r, f.dir.applyCount(), first)
	}
}

func TestAuditFailureWithholdsTheSettlement(t *testing.T) {
	f := newFixture(t)
	f.aud.fail = 1 << 30
	m := f.request(nil)
	out := f.handle(m, nil)
	if out.Settle != Abandon || out.Reply != nil {
		t.Fatalf("outcome %+v, want abandon without reply", out)
	}
	if f.h.Ready() == nil {
		t.Fatal("Ready is nil while the audit trail fails")
	}
	// Dead-letters too wait for their audit line.
	bad := f.request(nil)
	bad.ContentType = "text/plain"
	if out := f.handle(bad, nil); out.Settle != Abandon {
		t.Fatalf("dead-letter without audit line: %v", out.Settle)
	}
	// The trail recovers: the redelivery replays the recorded result.
	f.aud.fail = 0
	out = f.handle(m, nil)
	if r := f.result(out); r.Code != "ok" || f.dir.applyCount() != 1 {
		t.Fatalf("after recovery: %s, %d writes", r.Code, f.dir.applyCount())
	}
	if err := f.h.Ready(); err != nil {
		t.Fatalf("Ready after recovery: %v", err)
	}
}

func TestAuditTransientFailureIsRetried(t *testing.T) {
	f := newFixture(t)
	f.aud.fail = 2
	if out := f.handle(f.request(nil), nil); out.Settle != Complete || out.Reply == nil {
		t.Fatalf("outcome %+v", out)
	}
}

func TestInternalErrorAbandons(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeInternalError}}}
	out := f.handle(f.request(nil), nil)
	if out.Settle != Abandon || out.Reply != nil || out.Code != wire.CodeInternalError {
		t.Fatalf("outcome %+v", out)
	}
	if f.aud.last(t).Event != audit.EventAbandoned {
		t.Fatal("abandon not audited")
	}
}

func TestCancelledContextAbandonsWithoutWriting(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	out := f.h.Handle(ctx, Delivery{Message: f.request(nil)})
	if out.Settle != Abandon || out.Code != "" || f.dir.applyCount() != 0 {
		t.Fatalf("outcome %+v after %d writes", out, f.dir.applyCount())
	}
	if len(f.aud.records) != 1 || f.aud.records[0].Detail != AuditDetailInterrupted || f.aud.records[0].Event != audit.EventAbandoned {
		t.Fatalf("an interrupted delivery was audited as %+v", f.aud.records)
	}
}

// Stop during retries: the wait ends at once and the message is abandoned.
func TestCancelDuringRetries(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}}}
	f.dir.onApply = func(context.Context) { cancel() }
	out := f.h.Handle(ctx, Delivery{Message: f.request(nil)})
	if out.Settle != Abandon || f.dir.applyCount() != 1 {
		t.Fatalf("outcome %+v after %d writes", out, f.dir.applyCount())
	}
}

// The same request delivered twice at once is written once: the second
// delivery waits its budget for the first, then leaves itself for
// redelivery, which replays.
func TestConcurrentDuplicateDeliveries(t *testing.T) {
	f := newFixture(t)
	m := f.request(nil)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	f.dir.onApply = func(context.Context) {
		once.Do(func() { close(entered); <-release })
	}
	var first Outcome
	done := make(chan struct{})
	go func() { first = f.handle(m, nil); close(done) }()
	<-entered
	second := f.handle(m, nil)
	if second.Settle != Abandon || second.Reply != nil || f.aud.last(t).Detail != AuditDetailInFlight {
		t.Fatalf("second delivery: %+v", second)
	}
	close(release)
	<-done
	if first.Settle != Complete {
		t.Fatalf("first delivery: %+v", first)
	}
	if r := f.result(f.handle(m, nil)); r.Code != "ok" || f.dir.applyCount() != 1 {
		t.Fatalf("redelivery: %s, %d writes", r.Code, f.dir.applyCount())
	}
}

func TestNoPasswordInLogsOrAudit(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{
		{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true}},
		{Applied: Applied{Code: wire.CodePasswordPolicy, Detail: wire.DetailComplexity}},
	}
	pw := "Hunter2-Unique-Passw0rd"
	old := "Old-Unique-Passw0rd"
	f.handle(f.request(func(s *protocol.RequestSpec) {
		s.Op, s.New, s.Old = wire.OpChange, secret.FromString(pw), secret.FromString(old)
	}), &fakeSession{})
	var all strings.Builder
	for _, e := range f.logs.All() {
		all.WriteString(e.Message)
		for k, v := range e.ContextMap() {
			all.WriteString(k + "=" + toString(v))
		}
	}
	for _, r := range f.aud.records {
		b, _ := json.Marshal(r)
		all.Write(b)
	}
	if s := all.String(); strings.Contains(s, pw) || strings.Contains(s, old) {
		t.Fatal("a password reached a log line or audit record")
	}
	if len(f.logs.All()) == 0 {
		t.Fatal("the retry was not logged; the check above proves nothing")
	}
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// An indeterminate failure (the answer to a sent write was lost) makes the
// next attempt check pwdLastSet first; one that did not land is repeated.
func TestIndeterminateFailureChecksBeforeRepeating(t *testing.T) {
	f := newFixture(t)
	f.dir.script = []step{{Applied: Applied{Code: wire.CodeDirectoryUnavailable, Transient: true, Indeterminate: true}}, {Applied: Applied{Code: wire.CodeOK}, writes: true}}
	out := f.handle(f.request(func(s *protocol.RequestSpec) {
		s.Op, s.Old = wire.OpChange, secret.FromString("Old-Passw0rd!")
	}), nil)
	if r := f.result(out); r.Code != "ok" || f.dir.applyCount() != 2 || f.dir.pwdCalls != 1 {
		t.Fatalf("result %s after %d writes and %d pwdLastSet reads", r.Code, f.dir.applyCount(), f.dir.pwdCalls)
	}
	if f.aud.last(t).Detail == AuditDetailRecovered {
		t.Fatal("a repeated write was audited as recovered")
	}
}

// The agent stopped after the result line was written but before the
// ledger recorded that: the redelivery finds the line and only replays.
func TestResultLineWrittenBeforeTheCrash(t *testing.T) {
	f := newFixture(t)
	m := f.request(nil)
	if r := f.result(f.handle(m, nil)); r.Code != wire.CodeOK {
		t.Fatalf("first delivery: %s", r.Code)
	}
	// Forget that the line is written, as a crash right after it would.
	rec, err := f.led.Get(m.MessageID)
	if err != nil || !rec.Audited {
		t.Fatalf("after the first delivery: %+v, %v", rec, err)
	}
	if err := f.led.MarkDone(m.MessageID, rec.Result, rec.At); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Minute)
	out := f.handle(m, nil)
	if r := f.result(out); r.Code != wire.CodeOK || f.dir.applyCount() != 1 {
		t.Fatalf("redelivery: %s after %d writes", r.Code, f.dir.applyCount())
	}
	results := 0
	for _, r := range f.aud.records {
		if r.RequestID == m.MessageID && r.Event == audit.EventResult {
			results++
		}
	}
	if results != 1 || f.aud.last(t).Event != audit.EventReplayed {
		t.Fatalf("%d result lines, last %+v; want one result line and a replay", results, f.aud.last(t))
	}
}

// A duplicate delivery that arrives while the first is still writing its
// result's audit line waits for that line and replays: it writes no second
// result line.
func TestDuplicateWaitsForTheResultLine(t *testing.T) {
	f := newFixture(t)
	m := f.request(nil)
	if _, err := f.led.MarkApplying(m.MessageID, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	res := protocol.NewResult(m.MessageID, wire.OpReset, wire.CodeOK, "", "agent-1", f.clock.Now())
	body, err := res.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if err := f.led.MarkDone(m.MessageID, body, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, mine := f.h.beginAuditing(m.MessageID); !mine { // the first delivery, between ledger and audit
		t.Fatal("nothing should be auditing yet")
	}
	done := make(chan Outcome, 1)
	go func() { done <- f.handle(m, nil) }()
	select {
	case out := <-done:
		t.Fatalf("the duplicate did not wait for the first delivery's audit line: %+v", out)
	case <-time.After(100 * time.Millisecond):
	}
	// The first delivery writes its line and says so.
	if err := f.led.MarkAudited(m.MessageID); err != nil {
		t.Fatal(err)
	}
	f.h.endAuditing(m.MessageID)
	out := <-done
	if r := f.result(out); r.Code != wire.CodeOK || out.Settle != Complete || f.dir.applyCount() != 0 {
		t.Fatalf("duplicate: %+v after %d writes", out, f.dir.applyCount())
	}
	if rec := f.aud.last(t); rec.Event != audit.EventReplayed {
		t.Fatalf("audit %+v, want replayed", rec)
	}
}

// wired returns Options with every required field set to a placeholder,
// for tests of New's checks.
func wired() Options {
	return Options{Opener: &protocol.Opener{}, Directory: &fakeDir{}, Ledger: &ledger.Store{}, Audit: &fakeAudit{}, SigningKey: &protocol.SigningKey{}, Seal: &ledger.SessionSeal{},
		RetryBudget: time.Minute, BackoffInitial: 500 * time.Millisecond, BackoffMax: 8 * time.Second, PostWriteTimeout: 10 * time.Second}
}

// Timings are the config's to default: a handler built without one is a
// wiring mistake, refused with what is missing, never run on a value
// nobody chose.
func TestNewRefusesMissingTimings(t *testing.T) {
	if _, err := New(wired()); err != nil {
		t.Fatalf("New with every timing: %v", err)
	}
	for _, c := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"retry budget", func(o *Options) { o.RetryBudget = 0 }, "requests.retryBudget"},
		{"first backoff", func(o *Options) { o.BackoffInitial = 0 }, "backoff"},
		{"backoff cap below the first step", func(o *Options) { o.BackoffMax = o.BackoffInitial / 2 }, "backoff"},
		{"post-write timeout", func(o *Options) { o.PostWriteTimeout = 0 }, "post-write timeout"},
	} {
		o := wired()
		c.edit(&o)
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New without %s = %v; want an error naming %q", c.name, err, c.want)
		}
	}
}

// Dead-letters of messages nobody trusted go to Rejections (the
// aggregator); a trusted sender's invalid request keeps its own line.
func TestUntrustedRejectionsGoToRejections(t *testing.T) {
	f := newFixture(t)
	rej := &fakeAudit{}
	f.h.o.Rejections = rej
	other, _ := protocol.GenerateSigningKey()
	m := f.request(nil)
	m.ApplicationProperties[protocol.PropSender] = other.KID()
	m.ApplicationProperties[protocol.PropSignature] = other.Sign(m.Body)
	if out := f.handle(m, nil); out.Settle != DeadLetter {
		t.Fatalf("unauthenticated: %v", out.Settle)
	}
	m = f.request(nil)
	m.ContentType = "text/plain"
	if out := f.handle(m, nil); out.Settle != DeadLetter {
		t.Fatalf("malformed: %v", out.Settle)
	}
	if len(rej.records) != 2 || len(f.aud.records) != 0 || rej.records[0].SenderKID != other.KID() {
		t.Fatalf("rejections %+v, audit %+v; want both untrusted messages in rejections", rej.records, f.aud.records)
	}
	m = f.request(func(s *protocol.RequestSpec) {
		s.IssuedAt, s.ExpiresAt = f.clock.Now().Add(10*time.Minute), f.clock.Now().Add(12*time.Minute)
	})
	if out := f.handle(m, nil); out.Settle != DeadLetter || len(f.aud.records) != 1 || len(rej.records) != 2 {
		t.Fatalf("invalid_request: %v, audit %d, rejections %d; want it in the audit", out.Settle, len(f.aud.records), len(rej.records))
	}
}
