package directory

import (
	"context"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

const (
	pw1 = "First-Passw0rd-1"
	pw2 = "Second-Passw0rd-2"
	pw3 = "Third-Passw0rd-3"
)

func apply(t *testing.T, d *Directory, ch Change) Outcome {
	t.Helper()
	return d.Apply(context.Background(), ch)
}

func wantCode(t *testing.T, out Outcome, code, detail string) {
	t.Helper()
	if out.Code != code || out.Detail != detail {
		t.Fatalf("outcome %s/%s, want %s/%s (err: %v, ad %s)", out.Code, out.Detail, code, detail, out.Err, out.ADCode)
	}
}

func reset(target Target, pw string) Change {
	return Change{Op: wire.OpReset, Target: target, New: secret.FromString(pw)}
}

func change(target Target, old, pw string) Change {
	return Change{Op: wire.OpChange, Target: target, Old: secret.FromString(old), New: secret.FromString(pw)}
}

// wantReset resets u's password to pw through d, by UPN, and wants the
// reset to succeed and pw to bind.
func wantReset(t *testing.T, d *Directory, u *sambadc.User, pw string) {
	t.Helper()
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw)), wire.CodeOK, "")
	wantBind(t, u.UPN, pw, "")
}

// wantChange changes u's password from old to pw through d, by UPN, and
// wants the change to succeed and pw to bind.
func wantChange(t *testing.T, d *Directory, u *sambadc.User, old, pw string) {
	t.Helper()
	wantCode(t, apply(t, d, change(Target{UserPrincipalName: u.UPN}, old, pw)), wire.CodeOK, "")
	wantBind(t, u.UPN, pw, "")
}

func TestReset(t *testing.T) {
	needDC(t)
	u := newUser(t, fx.staff, pw1)
	out := apply(t, fx.dir, reset(Target{ObjectGUID: u.ObjectGUID}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if !strings.EqualFold(out.DN, u.DN) || out.ObjectGUID != u.ObjectGUID || out.DC != fx.dc.LDAPSURL() || out.Domain != fx.dc.Realm() {
		t.Fatalf("audit fields: %+v", out)
	}
	wantBind(t, u.UPN, pw2, "")
	wantBind(t, u.UPN, pw1, "52e")
}

func TestTargetForms(t *testing.T) {
	needDC(t)
	u := newUser(t, fx.staff, pw1)
	targets := map[string]Target{
		"UPN":                      {UserPrincipalName: strings.ToUpper(u.UPN)},
		"sAMAccountName + NetBIOS": {SAMAccountName: u.SAMAccountName, Domain: "corp"},
		"sAMAccountName + DNS":     {SAMAccountName: strings.ToUpper(u.SAMAccountName), Domain: fx.dc.Realm()},
		"sAMAccountName alone":     {SAMAccountName: u.SAMAccountName},
		"immutableId = objectGUID": {ImmutableID: base64.StdEncoding.EncodeToString(u.GUIDBytes)},
	}
	pws := []string{pw2, pw3, "Fourth-Passw0rd-4", "Fifth-Passw0rd-5", "Sixth-Passw0rd-6"}
	i := 0
	for name, target := range targets {
		pw := pws[i]
		i++
		out := apply(t, fx.dir, reset(target, pw))
		if out.Code != wire.CodeOK || out.ObjectGUID != u.ObjectGUID {
			t.Fatalf("%s: %s %v", name, out.Code, out.Err)
		}
		wantBind(t, u.UPN, pw, "")
	}
	out := apply(t, fx.dir, reset(Target{SAMAccountName: u.SAMAccountName, Domain: "EMEA"}, pw1))
	wantCode(t, out, wire.CodeOutOfScope, "")
}

func TestImmutableIDConsistencyGuid(t *testing.T) {
	needDC(t)
	anchor := []byte("anchor-0123456789")[:16]
	u := newUser(t, fx.staff, pw1, func(s *sambadc.UserSpec) {
		s.Attrs = map[string][]string{"mS-DS-ConsistencyGuid": {string(anchor)}}
	})
	id := base64.StdEncoding.EncodeToString(anchor)
	out := apply(t, fx.dir, reset(Target{ImmutableID: id}, pw2))
	if out.Code != wire.CodeOK || out.ObjectGUID != u.ObjectGUID {
		t.Fatalf("immutableId via mS-DS-ConsistencyGuid: %s %v", out.Code, out.Err)
	}
	wantBind(t, u.UPN, pw2, "")
	// A second account with the same anchor makes it ambiguous.
	v := newUser(t, fx.staff, pw1, func(s *sambadc.UserSpec) {
		s.Attrs = map[string][]string{"mS-DS-ConsistencyGuid": {string(anchor)}}
	})
	wantCode(t, apply(t, fx.dir, reset(Target{ImmutableID: id}, pw3)), wire.CodeUserAmbiguous, "")
	for _, x := range []*sambadc.User{u, v} {
		wantBind(t, x.UPN, pw3, "52e")
	}
}

// lockedUser is a new user in the delegated OU, with password pw1,
// locked out.
func lockedUser(t *testing.T) *sambadc.User {
	t.Helper()
	u := newUser(t, fx.staff, pw1)
	if err := fx.dc.Lock(context.Background(), u.UPN, u.DN); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestResetUnlock(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	u := lockedUser(t)
	// A reset alone does not unlock (facts page).
	wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
	wantBind(t, u.UPN, pw2, "775")
	ch := reset(Target{UserPrincipalName: u.UPN}, pw3)
	ch.Unlock = true
	wantCode(t, apply(t, fx.dir, ch), wire.CodeOK, "")
	if locked, err := fx.dc.Locked(ctx, u.DN); err != nil || locked {
		t.Fatalf("still locked after reset+unlock: %v %v", locked, err)
	}
	wantBind(t, u.UPN, pw3, "")
}

func TestUnlock(t *testing.T) {
	needDC(t)
	u := lockedUser(t)
	wantBind(t, u.UPN, pw1, "775")
	wantCode(t, apply(t, fx.dir, Change{Op: wire.OpUnlock, Target: Target{ObjectGUID: u.ObjectGUID}}), wire.CodeOK, "")
	wantBind(t, u.UPN, pw1, "")
}

func TestResetMustChange(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	u := newUser(t, fx.staff, pw1)
	ch := reset(Target{UserPrincipalName: u.UPN}, pw2)
	ch.MustChange = true
	wantCode(t, apply(t, fx.dir, ch), wire.CodeOK, "")
	wantBind(t, u.UPN, pw2, "773")
	if must, err := fx.dc.MustChange(ctx, u.DN); err != nil || !must {
		t.Fatalf("must-change flag: %v %v", must, err)
	}
	at, err := fx.dir.PwdLastSet(ctx, Target{UserPrincipalName: u.UPN})
	if err != nil || !at.IsZero() {
		t.Fatalf("PwdLastSet after mustChange = %v, %v; want zero", at, err)
	}
	wantChange(t, fx.dir, u, pw2, pw3)
	if must, _ := fx.dc.MustChange(ctx, u.DN); must {
		t.Fatal("must-change flag survived the change")
	}
}

func TestChange(t *testing.T) {
	needDC(t)
	u := newUser(t, fx.staff, pw1)
	wantChange(t, fx.dir, u, pw1, pw2)
	wantBind(t, u.UPN, pw1, "52e")
	out := apply(t, fx.dir, change(Target{UserPrincipalName: u.UPN}, "Not-The-0ld-One", pw3))
	wantCode(t, out, wire.CodeWrongOldPassword, "")
	if out.ADCode != "00000056" {
		t.Fatalf("AD code %s", out.ADCode)
	}
	wantBind(t, u.UPN, pw2, "")
}

func TestChangeUnlock(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	u := lockedUser(t)
	out := apply(t, fx.dir, change(Target{UserPrincipalName: u.UPN}, pw1, pw2))
	wantCode(t, out, wire.CodeAccountLocked, "")
	if out.ADCode != "00000775" {
		t.Fatalf("AD code %s", out.ADCode)
	}
	ch := change(Target{UserPrincipalName: u.UPN}, pw1, pw2)
	ch.Unlock = true
	wantCode(t, apply(t, fx.dir, ch), wire.CodeOK, "")
	wantBind(t, u.UPN, pw2, "")
	if locked, _ := fx.dc.Locked(ctx, u.DN); locked {
		t.Fatal("still locked")
	}
}

// A user outside the delegated OU: change needs no delegation (AD grants
// Change Password to Everyone), so it still works there.
func TestChangeOutsideDelegation(t *testing.T) {
	needDC(t)
	wantChange(t, fx.dir, newUser(t, fx.other, pw1), pw1, pw2)
}

func TestPasswordPolicy(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	cases := []struct {
		name   string
		op     func(u *sambadc.User) Change
		prep   func(u *sambadc.User)
		detail string
	}{
		{name: "too short", detail: wire.DetailTooShort,
			op: func(u *sambadc.User) Change { return reset(Target{UserPrincipalName: u.UPN}, "Ab1-") }},
		{name: "complexity", detail: wire.DetailComplexity,
			op: func(u *sambadc.User) Change { return reset(Target{UserPrincipalName: u.UPN}, "alllowercaseletters") }},
		{name: "history", detail: wire.DetailHistory,
			prep: func(u *sambadc.User) {
				if out := apply(t, fx.dir, change(Target{UserPrincipalName: u.UPN}, pw1, pw2)); out.Code != wire.CodeOK {
					t.Fatalf("first change: %s %v", out.Code, out.Err)
				}
			},
			op: func(u *sambadc.User) Change { return change(Target{UserPrincipalName: u.UPN}, pw2, pw1) }},
		{name: "too young", detail: wire.DetailTooYoung,
			prep: func(u *sambadc.User) {
				if _, err := fx.dc.CreatePSO(ctx, sambadc.PSO{Name: "young-" + u.SAMAccountName, Precedence: 5, MinLength: 7, Complexity: true,
					History: 24, MinAge: 24 * time.Hour, AppliesTo: []string{u.DN}}); err != nil {
					t.Fatal(err)
				}
			},
			op: func(u *sambadc.User) Change { return change(Target{UserPrincipalName: u.UPN}, pw1, pw2) }},
		{name: "fine-grained PSO", detail: wire.DetailTooShort,
			prep: func(u *sambadc.User) {
				if _, err := fx.dc.CreatePSO(ctx, sambadc.PSO{Name: "long-" + u.SAMAccountName, Precedence: 5, MinLength: 24, Complexity: true,
					History: 24, AppliesTo: []string{u.DN}}); err != nil {
					t.Fatal(err)
				}
			},
			op: func(u *sambadc.User) Change { return reset(Target{UserPrincipalName: u.UPN}, pw2) }}, // 17 characters: fine for the domain, short for the PSO
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := newUser(t, fx.staff, pw1)
			current := pw1
			if c.prep != nil {
				c.prep(u)
				if c.name == "history" {
					current = pw2
				}
			}
			out := apply(t, fx.dir, c.op(u))
			wantCode(t, out, wire.CodePasswordPolicy, c.detail)
			if out.ADCode != "0000052D" || out.Transient {
				t.Fatalf("AD code %s transient %v", out.ADCode, out.Transient)
			}
			if code := bindCode(t, u.UPN, current); code != "" {
				t.Fatalf("refused write changed the password: bind with the current one: %s", code)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	needDC(t)
	for _, target := range []Target{
		{ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
		{UserPrincipalName: "nobody@" + fx.dc.Realm()},
		{SAMAccountName: "nobody"},
		{ImmutableID: "opvjPjVaPkyUSq6wp5wB1A=="},
	} {
		wantCode(t, apply(t, fx.dir, reset(target, pw2)), wire.CodeUserNotFound, "")
	}
	// A computer is found, even by its GUID, and never written: outside
	// the scope OUs it is out of scope, and with the whole domain in scope
	// it is a domain controller's account.
	e, err := fx.dc.Entry(context.Background(), "CN=DC1,OU=Domain Controllers,"+fx.dc.BaseDN(), "objectGUID")
	if err != nil {
		t.Fatal(err)
	}
	dcTarget := Target{ObjectGUID: GUIDString(e.GetRawAttributeValue("objectGUID"))}
	wantCode(t, apply(t, fx.dir, reset(dcTarget, pw2)), wire.CodeOutOfScope, "")
	o := fx.options()
	o.Scope.IncludeOUs, o.Scope.EntireDomain = nil, true
	out := apply(t, newDir(t, o), reset(dcTarget, pw2))
	wantCode(t, out, wire.CodeProtectedAccount, "")
	if !strings.Contains(out.Err.Error(), "domain controller") {
		t.Fatalf("reason %q does not say domain controller", out.Err)
	}
}

func TestGuard(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	t.Run("out of scope", func(t *testing.T) {
		u := newUser(t, "", pw1) // CN=Users
		wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOutOfScope, "")
		wantBind(t, u.UPN, pw1, "")
	})
	t.Run("adminCount", func(t *testing.T) {
		u := newUser(t, fx.staff, pw1)
		if err := fx.dc.SetAdminCount(ctx, u.DN, 1); err != nil {
			t.Fatal(err)
		}
		wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeProtectedAccount, "")
		wantBind(t, u.UPN, pw1, "")
		o := fx.options()
		o.Scope.ProtectAdminCount = false
		d := newDir(t, o)
		wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
	})
	t.Run("nested protected group", func(t *testing.T) {
		u := newUser(t, fx.staff, pw1)
		if err := fx.dc.AddMember(ctx, fx.nested, u.DN); err != nil {
			t.Fatal(err)
		}
		out := apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2))
		wantCode(t, out, wire.CodeProtectedAccount, "")
		if !strings.Contains(out.Err.Error(), "Tier0") {
			t.Fatalf("reason does not name the group: %v", out.Err)
		}
		wantBind(t, u.UPN, pw1, "")
	})
	t.Run("primary group nested in a protected group", func(t *testing.T) {
		u := newUser(t, fx.staff, pw1)
		if err := fx.dc.AddMember(ctx, fx.nested, u.DN); err != nil {
			t.Fatal(err)
		}
		g, err := fx.dc.Entry(ctx, fx.nested, "primaryGroupToken")
		if err != nil {
			t.Fatal(err)
		}
		if err := fx.dc.Modify(ctx, u.DN, "primaryGroupID", g.GetAttributeValue("primaryGroupToken")); err != nil {
			t.Fatal(err)
		}
		// Now memberOf no longer lists the group: only the primary group
		// check can see it.
		e, _ := fx.dc.Entry(ctx, u.DN, "memberOf")
		for _, g := range e.GetAttributeValues("memberOf") {
			if strings.EqualFold(g, fx.nested) {
				t.Fatalf("memberOf still lists %s", g)
			}
		}
		wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeProtectedAccount, "")
	})
	t.Run("protected name", func(t *testing.T) {
		u := newUser(t, fx.staff, pw1)
		o := fx.options()
		o.Scope.ProtectedAccounts = []string{"CORP\\" + strings.ToUpper(u.SAMAccountName)}
		d := newDir(t, o)
		wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeProtectedAccount, "")
		o.Scope.IncludeOUs, o.Scope.EntireDomain = nil, true
		d2 := newDir(t, o)
		wantCode(t, apply(t, d2, reset(Target{SAMAccountName: "Administrator"}, pw2)), wire.CodeProtectedAccount, "")
	})
	t.Run("disabled", func(t *testing.T) {
		u := newUser(t, fx.staff, pw1, func(s *sambadc.UserSpec) { s.Disabled = true })
		wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeAccountDisabled, "")
		o := fx.options()
		o.Scope.AllowDisabled = true
		d := newDir(t, o)
		wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
		wantBind(t, u.UPN, pw2, "533")
	})
	t.Run("outside the delegated OU", func(t *testing.T) {
		u := newUser(t, fx.other, pw1)
		out := apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2))
		wantCode(t, out, wire.CodeAccessDenied, "")
		if out.Transient {
			t.Fatal("access_denied marked transient")
		}
		wantBind(t, u.UPN, pw1, "")
		out = apply(t, fx.dir, Change{Op: wire.OpUnlock, Target: Target{UserPrincipalName: u.UPN}})
		wantCode(t, out, wire.CodeAccessDenied, "")
	})
}

func TestUnicodePassword(t *testing.T) {
	needDC(t)
	const pw = "Pässwörd-✓-Ωmega-2026"
	u := newUser(t, fx.staff, pw1)
	wantReset(t, fx.dir, u, pw)
	const pw4 = "Ünïcödé-Chänge-✓-2026"
	wantChange(t, fx.dir, u, pw, pw4)
}

func TestHistoryOnReset(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	pc, err := fx.dir.domains[0].pool.get(ctx)
	if err != nil {
		t.Fatal(err)
	}
	advertised := pc.root.policyHintsOID()
	req, _, err := fx.dir.modifyFor(pc, "CN=x", reset(Target{UserPrincipalName: "x@y"}, pw1))
	fx.dir.domains[0].pool.put(pc, true)
	if err != nil {
		t.Fatal(err)
	}
	if advertised != "" {
		t.Fatalf("Samba now advertises %s: revisit this test", advertised)
	}
	if len(req.Controls) != 0 {
		t.Fatalf("auto sent %v to a DC that does not advertise policy hints", req.Controls)
	}

	u := newUser(t, fx.staff, pw1)
	o := fx.options()
	o.HistoryOnReset = HistoryRequire
	d := newDir(t, o)
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodePasswordPolicy, wire.DetailPolicy)
	wantBind(t, u.UPN, pw1, "")
	wantCode(t, apply(t, d, change(Target{UserPrincipalName: u.UPN}, pw1, pw2)), wire.CodeOK, "") // require only concerns resets

	// The control as encoded here is critical for real: Samba, which does
	// not support it, refuses the modify. With go-ldap's 0x01 it would be
	// read as non-critical and the reset would go through.
	conn := svcConn(t)
	pw, _ := encodePassword(secret.FromString(pw3))
	mod := ldap.NewModifyRequest(u.DN, []ldap.Control{policyHints{oid: OIDPolicyHints}})
	mod.Replace("unicodePwd", []string{string(pw)})
	err = conn.Modify(mod)
	if err == nil {
		t.Fatal("Samba accepted a critical policy hints control it does not support: criticality not encoded as TRUE")
	}
	out := Classify(err)
	if out.Code != wire.CodePasswordPolicy || out.Detail != wire.DetailPolicy {
		t.Fatalf("critical control refusal %q classified %s/%s", err, out.Code, out.Detail)
	}
	wantBind(t, u.UPN, pw2, "")
}

func TestPwdLastSet(t *testing.T) {
	needDC(t)
	u := newUser(t, fx.staff, pw1)
	before := time.Now().Add(-2 * time.Second)
	wantCode(t, apply(t, fx.dir, reset(Target{ObjectGUID: u.ObjectGUID}, pw2)), wire.CodeOK, "")
	at, err := fx.dir.PwdLastSet(context.Background(), Target{ObjectGUID: u.ObjectGUID})
	if err != nil {
		t.Fatal(err)
	}
	if at.Before(before) || at.After(time.Now().Add(2*time.Second)) {
		t.Fatalf("pwdLastSet %v, want about now", at)
	}
	if _, err := fx.dir.PwdLastSet(context.Background(), Target{UserPrincipalName: "nobody@x"}); err == nil {
		t.Fatal("PwdLastSet of an unknown user succeeded")
	}
}

// When the connection's DC is not the PDC emulator, pwdLastSet is read on
// a connection of its own to the PDC. One Samba DC is both, so the test
// names another host as PDC and lets the injected dialer route it back.
func TestPwdLastSetOnOtherPDC(t *testing.T) {
	needDC(t)
	o := fx.options()
	var dialed []string
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		if h, port, _ := net.SplitHostPort(addr); h == "pdc.corp.example.test" {
			addr = net.JoinHostPort(fx.dc.IP(), port)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	d := newDir(t, o)
	d.domains[0].pdc, d.domains[0].pdcAt = "pdc.corp.example.test", time.Now()
	u := newUser(t, fx.staff, pw1)
	ch := reset(Target{UserPrincipalName: u.UPN}, pw2)
	ch.MustChange = true
	wantCode(t, apply(t, d, ch), wire.CodeOK, "")
	at, err := d.PwdLastSet(context.Background(), Target{UserPrincipalName: u.UPN})
	if err != nil || !at.IsZero() {
		t.Fatalf("PwdLastSet = %v, %v", at, err)
	}
	if dialed[len(dialed)-1] != "pdc.corp.example.test:636" {
		t.Fatalf("not read on the PDC: dialled %v", dialed)
	}
}

func TestKerberosBind(t *testing.T) {
	needDC(t)
	kt := t.TempDir() + "/svc.keytab"
	if err := fx.dc.ExportKeytab(context.Background(), fx.svcName+"@"+strings.ToUpper(fx.dc.Realm()), kt); err != nil {
		t.Fatal(err)
	}
	o := fx.options()
	o.Domains[0].Bind = Bind{Method: BindKerberos, User: fx.svcName, Keytab: kt, Krb5Conf: fx.dc.Krb5ConfPath()}
	u := newUser(t, fx.staff, pw1)
	wantReset(t, newDir(t, o), u, pw2)
	// A keytab for another principal does not bind.
	o.Domains[0].Bind.User = "someone-else"
	d2 := newDir(t, o)
	out := apply(t, d2, reset(Target{UserPrincipalName: u.UPN}, pw3))
	if out.Code == wire.CodeOK {
		t.Fatal("kerberos bind with a keytab for another principal succeeded")
	}
}

func TestStartTLS(t *testing.T) {
	needDC(t)
	o := fx.options()
	o.Domains[0].Servers = []string{fx.dc.LDAPURL()}
	o.Domains[0].TLS.StartTLS = true
	wantReset(t, newDir(t, o), newUser(t, fx.staff, pw1), pw2)
}

func TestBadCertificateIsUnavailable(t *testing.T) {
	needDC(t)
	o := fx.options()
	o.Domains[0].TLS.ServerName = "not-the-dc.example.test"
	d := newDir(t, o)
	u := newUser(t, fx.staff, pw1)
	out := apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2))
	if out.Code != wire.CodeDirectoryUnavailable || !out.Transient {
		t.Fatalf("wrong certificate name: %s transient %v", out.Code, out.Transient)
	}
	if out.Err == nil || !strings.Contains(out.Err.Error(), "certificate") {
		t.Fatalf("error does not mention the certificate: %v", out.Err)
	}
	if err := d.Ready(context.Background()); err == nil {
		t.Fatal("Ready with a wrong certificate name")
	}
	if err := fx.dir.Ready(context.Background()); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}
