package protocol

import (
	"strings"
	"testing"
	"time"

	"wbagent/internal/wire"
)

var allCodes = []string{
	wire.CodeOK, wire.CodePasswordPolicy, wire.CodeWrongOldPassword, wire.CodeAccountLocked, wire.CodeAccountDisabled,
	wire.CodeUserNotFound, wire.CodeUserAmbiguous, wire.CodeProtectedAccount, wire.CodeOutOfScope, wire.CodeAccessDenied,
	wire.CodeExpired, wire.CodeInvalidRequest, wire.CodeDirectoryUnavailable, wire.CodeInternalError,
}

func TestReasonEveryCode(t *testing.T) {
	seen := map[string]string{}
	for _, code := range allCodes {
		if !wire.KnownCode(code) {
			t.Errorf("%s not known", code)
		}
		r := Reason(code, "")
		if r == "" || !strings.HasSuffix(r, ".") {
			t.Errorf("%s: reason %q is not a sentence", code, r)
		}
		if other, dup := seen[r]; dup {
			t.Errorf("%s and %s share the reason %q", code, other, r)
		}
		seen[r] = code
	}
	details := map[string]bool{}
	for _, d := range []string{wire.DetailTooShort, wire.DetailComplexity, wire.DetailHistory, wire.DetailTooYoung, wire.DetailPolicy} {
		r := Reason(wire.CodePasswordPolicy, d)
		if details[r] {
			t.Errorf("detail %s shares a reason", d)
		}
		details[r] = true
	}
	if Reason(wire.CodePasswordPolicy, wire.DetailHistory) != "The new password was used recently. Choose a different one." {
		t.Error("history reason differs from the spec's example")
	}
	if ReasonFor(wire.OpUnlock, wire.CodeOK, "") == Reason(wire.CodeOK, "") {
		t.Error("a successful unlock claims a password change")
	}
	if wire.KnownCode("bogus") || Reason("bogus", "") != Reason(wire.CodeInternalError, "") {
		t.Error("unknown code not treated as internal_error")
	}
}

func TestResultSignVerify(t *testing.T) {
	agent, _ := GenerateSigningKey()
	other, _ := GenerateSigningKey()
	at := time.Date(2026, 11, 24, 18, 0, 1, 234567890, time.UTC)
	r := NewResult("0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21", wire.OpReset, wire.CodePasswordPolicy, wire.DetailHistory, "dc-site-a-1", at)
	if r.Status != StatusFailed || r.Retryable || r.V != 1 {
		t.Fatalf("%+v", r)
	}
	m, err := SignResult(agent, r, "")
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"id":"0b6f7c1e-4a53-4f7e-9a6a-2f3c6f0e9d21","status":"failed","code":"password_policy","detail":"history","reason":"The new password was used recently. Choose a different one.","retryable":false,"agent":"dc-site-a-1","completedAt":"2026-11-24T18:00:01.234Z"}`
	if string(m.Body) != want {
		t.Errorf("body\n got %s\nwant %s", m.Body, want)
	}
	got, err := VerifyResult(agent.Public(), m)
	if err != nil {
		t.Fatal(err)
	}
	if *got != r {
		t.Errorf("round trip\n got %+v\nwant %+v", *got, r)
	}
	if _, err := VerifyResult(other.Public(), m); err == nil {
		t.Error("verified with another key")
	}
	bad := m
	bad.ContentType = RequestContentType
	if _, err := VerifyResult(agent.Public(), bad); err == nil {
		t.Error("request content type accepted")
	}
	bad = m
	bad.CorrelationID = "other"
	if _, err := VerifyResult(agent.Public(), bad); err == nil {
		t.Error("correlation mismatch accepted")
	}
	ok := NewResult("id", wire.OpReset, wire.CodeDirectoryUnavailable, "", "a", at)
	if ok.Status != StatusFailed || !ok.Retryable {
		t.Errorf("%+v", ok)
	}
	if s := NewResult("id", wire.OpChange, wire.CodeOK, "", "a", at); s.Status != StatusSucceeded {
		t.Errorf("%+v", s)
	}
}

func TestSignResultRefuses(t *testing.T) {
	key, _ := GenerateSigningKey()
	base := NewResult("id", wire.OpReset, wire.CodeOK, "", "a", time.Now())
	for name, edit := range map[string]func(*Result){
		"version":       func(r *Result) { r.V = 2 },
		"no id":         func(r *Result) { r.ID = "" },
		"unknown code":  func(r *Result) { r.Code = "nope" },
		"status for ok": func(r *Result) { r.Status = StatusFailed },
		"status failed": func(r *Result) { r.Code = wire.CodeExpired },
		"no reason":     func(r *Result) { r.Reason = "" },
		"no time":       func(r *Result) { r.CompletedAt = time.Time{} },
	} {
		r := base
		edit(&r)
		if _, err := SignResult(key, r, ""); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := SignResult(nil, base, ""); err == nil {
		t.Error("signed without a key")
	}
}

func TestParseResultStrict(t *testing.T) {
	good := `{"v":1,"id":"x","status":"succeeded","code":"ok","reason":"r.","retryable":false,"agent":"a","completedAt":"2026-11-24T18:00:01.234Z"}`
	if _, err := ParseResult([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"unknown member": strings.Replace(good, `"v":1`, `"v":1,"x":1`, 1),
		"duplicate":      strings.Replace(good, `"v":1`, `"v":1,"v":1`, 1),
		"missing agent":  strings.Replace(good, `"agent":"a",`, ``, 1),
		"retryable type": strings.Replace(good, `"retryable":false`, `"retryable":0`, 1),
		"bad time":       strings.Replace(good, `2026-11-24T18:00:01.234Z`, `yesterday`, 1),
		"not object":     `[]`,
	} {
		if _, err := ParseResult([]byte(body)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestRejectionClasses(t *testing.T) {
	for _, c := range []struct {
		class        Class
		code         string
		result, dead bool
	}{
		{Malformed, "malformed", false, true},
		{Unauthenticated, "unauthenticated", false, true},
		{Invalid, wire.CodeInvalidRequest, true, true},
		{Expired, wire.CodeExpired, true, false},
	} {
		r := &Rejection{Class: c.class, Rule: "rule", MessageID: "m"}
		if r.Code() != c.code || c.class.SendsResult() != c.result || c.class.DeadLetters() != c.dead {
			t.Errorf("%v: code %s result %v dead %v", c.class, r.Code(), c.class.SendsResult(), c.class.DeadLetters())
		}
		if !strings.Contains(r.Error(), "rule") || !strings.Contains(r.Error(), c.code) {
			t.Errorf("error %q", r.Error())
		}
	}
}
