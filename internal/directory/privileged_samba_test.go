package directory

import (
	"context"
	"strings"
	"testing"

	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// minimalOptions are the directory settings of the shortest config an
// admin writes: one domain and includeOUs, nothing protected by name or
// DN, adminCount left to its default.
func minimalOptions() Options {
	o := fx.options()
	o.Scope = Scope{IncludeOUs: []string{fx.staff}, ProtectAdminCount: true}
	return o
}

// Privileged accounts in the scope OU are refused by well-known SID with
// no protectedGroups or protectedAccounts configured, and their passwords
// stay as they were; an ordinary user next to them is reset. Samba never
// sets adminCount, so none of this rests on it.
func TestBuiltinPrivilegedRefused(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	dc := fx.dc
	d := newDir(t, minimalOptions())
	da := dc.UsersGroupDN("Domain Admins")
	nestedGroup, err := dc.CreateGroup(ctx, "Helpdesk-Tier0", fx.staff)
	if err != nil {
		t.Fatal(err)
	}
	if err := dc.AddMember(ctx, da, nestedGroup); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(t *testing.T, dn string)
		want  string // in the refusal's reason
	}{
		{"direct Domain Admin", member(da), "Domain Admins"},
		{"nested Domain Admin", member(nestedGroup), "Domain Admins"},
		{"primary group Domain Admins", func(t *testing.T, dn string) {
			if err := dc.SetPrimaryGroup(ctx, dn, da); err != nil {
				t.Fatal(err)
			}
			e, err := dc.Entry(ctx, da, "member")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range e.GetAttributeValues("member") {
				if strings.EqualFold(m, dn) {
					t.Fatalf("%s is still in Domain Admins' member list", dn)
				}
			}
		}, "primary group is the built-in privileged group Domain Admins"},
		{"Enterprise Admin", member(dc.UsersGroupDN("Enterprise Admins")), "Enterprise Admins"},
		{"Schema Admin", member(dc.UsersGroupDN("Schema Admins")), "Schema Admins"},
		{"Backup Operator", member(dc.BuiltinGroupDN("Backup Operators")), "Backup Operators"},
		{"Account Operator", member(dc.BuiltinGroupDN("Account Operators")), "Account Operators"},
		{"Print Operator", member(dc.BuiltinGroupDN("Print Operators")), "Print Operators"},
		{"Administrators", member(dc.BuiltinGroupDN("Administrators")), "Administrators"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(t, fx.staff, pw1)
			tc.setup(t, u.DN)
			e, err := dc.Entry(ctx, u.DN, "adminCount")
			if err != nil {
				t.Fatal(err)
			}
			if e.GetAttributeValue("adminCount") != "" {
				t.Fatalf("adminCount is set (%s): the test would not show the SID check", e.GetAttributeValue("adminCount"))
			}
			out := apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2))
			wantCode(t, out, wire.CodeProtectedAccount, "")
			if !strings.Contains(out.Err.Error(), tc.want) {
				t.Fatalf("reason %q does not name %s", out.Err, tc.want)
			}
			wantBind(t, u.UPN, pw1, "")
			wantCode(t, apply(t, d, change(Target{UserPrincipalName: u.UPN}, pw1, pw2)), wire.CodeProtectedAccount, "")
			wantBind(t, u.UPN, pw1, "")
		})
	}
	t.Run("computer account", func(t *testing.T) {
		pw := secret.FromString(pw1)
		c, err := dc.CreateComputer(ctx, "WS-PRIV1", fx.staff, pw)
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []Target{{SAMAccountName: c.SAMAccountName}, {ObjectGUID: c.ObjectGUID}} {
			out := apply(t, d, reset(target, pw2))
			wantCode(t, out, wire.CodeProtectedAccount, "")
			if !strings.Contains(out.Err.Error(), "computer account") {
				t.Fatalf("reason %q does not say computer account", out.Err)
			}
		}
		if code, err := dc.BindCode(ctx, c.DN, pw); err != nil || code != "" {
			t.Fatalf("the computer's old password no longer binds: %q %v", code, err)
		}
	})
	t.Run("built-in Administrator", func(t *testing.T) {
		o := minimalOptions()
		o.Scope = Scope{EntireDomain: true}
		wantCode(t, apply(t, newDir(t, o), reset(Target{SAMAccountName: "Administrator"}, pw2)), wire.CodeProtectedAccount, "")
		wantCode(t, apply(t, newDir(t, o), reset(Target{SAMAccountName: "krbtgt"}, pw2)), wire.CodeProtectedAccount, "")
		if err := dc.Bind(ctx, dc.AdminUPN(), dc.AdminPassword()); err != nil {
			t.Fatalf("Administrator's password changed: %v", err)
		}
	})
	t.Run("ordinary user", func(t *testing.T) {
		wantReset(t, d, newUser(t, fx.staff, pw1), pw2)
	})
}

// allowPrivileged opens exactly the named class: a print operator can be
// reset, a backup operator still cannot.
func TestAllowPrivileged(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	o := minimalOptions()
	o.Scope.AllowPrivileged = []string{"Print Operators"}
	d := newDir(t, o)
	printer := newUser(t, fx.staff, pw1)
	if err := fx.dc.AddMember(ctx, fx.dc.BuiltinGroupDN("Print Operators"), printer.DN); err != nil {
		t.Fatal(err)
	}
	wantCode(t, apply(t, newDir(t, minimalOptions()), reset(Target{UserPrincipalName: printer.UPN}, pw2)), wire.CodeProtectedAccount, "")
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: printer.UPN}, pw2)), wire.CodeOK, "")
	wantBind(t, printer.UPN, pw2, "")
	backup := newUser(t, fx.staff, pw1)
	if err := fx.dc.AddMember(ctx, fx.dc.BuiltinGroupDN("Backup Operators"), backup.DN); err != nil {
		t.Fatal(err)
	}
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: backup.UPN}, pw2)), wire.CodeProtectedAccount, "")
	wantBind(t, backup.UPN, pw1, "")
}

// A membership granted after the guard last looked protects the account
// at once: only the groups' DNs and primary group verdicts are cached,
// never whether an account is a member.
func TestPrivilegedMembershipSeenAtOnce(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	u := newUser(t, fx.staff, pw1)
	d := newDir(t, minimalOptions())
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
	if err := fx.dc.AddMember(ctx, fx.dc.UsersGroupDN("Domain Admins"), u.DN); err != nil {
		t.Fatal(err)
	}
	wantCode(t, apply(t, newDir(t, minimalOptions()), reset(Target{UserPrincipalName: u.UPN}, pw3)), wire.CodeProtectedAccount, "")
	// The member search itself is never cached: the same Directory sees it too.
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw3)), wire.CodeProtectedAccount, "")
	wantBind(t, u.UPN, pw2, "")
}

func member(group string) func(t *testing.T, dn string) {
	return func(t *testing.T, dn string) {
		t.Helper()
		if err := fx.dc.AddMember(context.Background(), group, dn); err != nil {
			t.Fatal(err)
		}
	}
}

// check resolves the built-in groups as the guard does and lists them;
// an allowed class is left out.
func TestCheckListsBuiltinProtection(t *testing.T) {
	needDC(t)
	o := minimalOptions()
	o.Scope.AllowPrivileged = []string{"Print Operators"}
	var row *CheckRow
	for _, r := range Check(context.Background(), o) {
		if strings.HasSuffix(r.Name, "built-in protection") {
			row = &r
		}
	}
	if row == nil || !row.OK {
		t.Fatalf("no passing built-in protection row: %+v", row)
	}
	for _, want := range []string{"Domain Admins = CN=Domain Admins,CN=Users," + fx.dc.BaseDN(),
		"Backup Operators = CN=Backup Operators,CN=Builtin,", "Enterprise Admins = CN=Enterprise Admins,CN=Users,"} {
		if !strings.Contains(row.Detail, want) {
			t.Errorf("row lacks %q: %s", want, row.Detail)
		}
	}
	if strings.Contains(row.Detail, "Print Operators") {
		t.Errorf("the allowed class is listed: %s", row.Detail)
	}
}
