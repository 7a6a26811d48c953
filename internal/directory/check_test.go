package directory

import (
	"context"
	"strings"
	"testing"

	"wbagent/internal/secret"
)

func secretOf(s string) *secret.Secret { return secret.FromString(s) }

func failed(rows []CheckRow) []CheckRow {
	var out []CheckRow
	for _, r := range rows {
		if !r.OK {
			out = append(out, r)
		}
	}
	return out
}

func TestCheckDelegated(t *testing.T) {
	needDC(t)
	newUser(t, fx.staff, pw1) // a probe user for allowedAttributesEffective
	o := fx.options()
	o.Scope.IncludeOUs = []string{fx.staff}
	rows := Check(context.Background(), o)
	if f := failed(rows); len(f) > 0 {
		t.Fatalf("check failed with the delegated account: %+v", f)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r.Name)
	}
	all := strings.Join(names, "\n")
	for _, want := range []string{"TCP ", "TLS ldaps://", "bind to ", "naming context", "policy hints", "rights on " + fx.staff, "least privilege"} {
		if !strings.Contains(all, want) {
			t.Errorf("no row %q in:\n%s", want, all)
		}
	}
}

func TestCheckMissingRights(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	// An OU with only Reset Password granted, and a user in it so the
	// attribute rights are read from allowedAttributesEffective.
	partial, err := fx.dc.CreateOU(ctx, "Partial", "")
	if err != nil {
		t.Fatal(err)
	}
	e, err := fx.dc.Entry(ctx, "CN="+fx.svcName+",CN=Users,"+fx.dc.BaseDN(), "objectSid")
	if err != nil {
		t.Fatal(err)
	}
	sid := sidString(e.GetRawAttributeValue("objectSid"))
	if _, err := fx.dc.SambaTool(ctx, "dsacl", "set", "--objectdn="+partial,
		"--sddl=(OA;CIIO;CR;"+guidResetPassword+";"+guidUserClass+";"+sid+")"); err != nil {
		t.Fatal(err)
	}
	newUser(t, partial, pw1)
	empty, err := fx.dc.CreateOU(ctx, "Empty", "")
	if err != nil {
		t.Fatal(err)
	}

	o := fx.options()
	o.Scope.IncludeOUs = []string{fx.staff, partial, empty}
	rows := Check(ctx, o)
	f := failed(rows)
	if len(f) != 2 {
		t.Fatalf("want 2 failing rows (Partial, Empty), got %+v", f)
	}
	for _, r := range f {
		if !strings.Contains(r.Fix, "delegate-samba.sh --account "+fx.svcName+" --ou") || !strings.Contains(r.Fix, "Delegate-Writeback.ps1") {
			t.Errorf("fix does not name the delegation scripts: %s", r.Fix)
		}
		switch {
		case strings.HasSuffix(r.Name, partial):
			if r.Detail != "missing for user objects: write lockoutTime, write pwdLastSet" {
				t.Errorf("Partial: %s", r.Detail)
			}
		case strings.HasSuffix(r.Name, empty):
			if r.Detail != "missing for user objects: reset password, write lockoutTime, write pwdLastSet" {
				t.Errorf("Empty: %s", r.Detail)
			}
		default:
			t.Errorf("unexpected failure %+v", r)
		}
	}
	// The installer script fixes it, and the check passes.
	for _, ou := range []string{partial, empty} {
		if err := fx.dc.Delegate(ctx, fx.svcName, ou); err != nil {
			t.Fatal(err)
		}
	}
	if f := failed(Check(ctx, o)); len(f) > 0 {
		t.Fatalf("after delegation: %+v", f)
	}
}

func TestCheckFailures(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	only := func(mutate func(o *Options)) Options {
		o := fx.options()
		o.Scope.IncludeOUs = []string{fx.staff}
		mutate(&o)
		return o
	}
	cases := []struct {
		name, row, fix string
		opts           Options
	}{
		{"wrong password", "bind to", "bind.password",
			only(func(o *Options) { o.Domains[0].Bind.Password = secretOf("wrong-Passw0rd") })},
		{"unknown CA", "TLS ", "tls.caFile",
			only(func(o *Options) { o.Domains[0].TLS.CAFile = "" })},
		{"wrong name", "TLS ", "tls.serverName",
			only(func(o *Options) { o.Domains[0].TLS.ServerName = "other.example.test" })},
		{"closed port", "TCP ", "firewall",
			only(func(o *Options) { o.Domains[0].Servers = []string{"ldaps://" + closedPort(t)} })},
		{"history required", "policy hints", "historyOnReset",
			only(func(o *Options) { o.HistoryOnReset = HistoryRequire })},
		{"wrong base DN", "naming context", "set baseDN",
			only(func(o *Options) { o.Domains[0].BaseDN = "DC=elsewhere,DC=test" })},
		{"privileged account", "least privilege", "dedicated account",
			only(func(o *Options) {
				o.Domains[0].Bind.User = fx.dc.AdminUPN()
				o.Domains[0].Bind.Password = fx.dc.AdminPassword()
			})},
		{"bad config", "configuration", "directory section",
			only(func(o *Options) { o.Domains[0].Servers = []string{"ldap://plain"} })},
		{"unresolvable host", "DNS no-such-dc.invalid", "resolvable",
			only(func(o *Options) { o.Domains[0].Servers = []string{"ldaps://no-such-dc.invalid"} })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := failed(Check(ctx, c.opts))
			if len(f) != 1 {
				t.Fatalf("want one failing row, got %+v", f)
			}
			if !strings.Contains(f[0].Name, c.row) || !strings.Contains(f[0].Fix, c.fix) {
				t.Fatalf("row %q fix %q; want row ~%q fix ~%q (detail %s)", f[0].Name, f[0].Fix, c.row, c.fix, f[0].Detail)
			}
		})
	}
}
