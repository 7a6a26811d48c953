package e2e

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// The shortest config an admin writes (one domain, includeOUs, nothing
// protected by name, adminCount left to its default) must still refuse
// every privileged account in the scope OU: a nested and a direct Domain
// Admin, a user whose primary group is Domain Admins, an Enterprise Admin,
// a Backup and an Account Operator and a computer account each get
// protected_account and keep their password, while an ordinary user next
// to them is reset. With allowPrivileged: [Print Operators] a print
// operator can be reset, and check warns about it.
func TestMinimalConfigRefusesPrivilegedAccounts(t *testing.T) {
	r := newRun(t, false)
	ctx := r.ctx
	dc := dom.DC
	member := func(prefix, group string) *testbed.User {
		t.Helper()
		u := r.user(prefix)
		if err := dc.AddMember(ctx, group, u.DN); err != nil {
			t.Fatal(err)
		}
		return u
	}
	primary := r.user("pgid")
	if err := dc.SetPrimaryGroup(ctx, primary.DN, dom.DomainAdmins); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		what string
		u    *testbed.User
	}{
		{"nested Domain Admin", member("nest", dom.NestedGroup)},
		{"direct Domain Admin", member("da", dom.DomainAdmins)},
		{"primary group Domain Admins", primary},
		{"Enterprise Admin", member("ea", dc.UsersGroupDN("Enterprise Admins"))},
		{"Backup Operator", member("bop", dc.BuiltinGroupDN("Backup Operators"))},
		{"Account Operator", member("aop", dc.BuiltinGroupDN("Account Operators"))},
	}
	printer := member("pop", dc.BuiltinGroupDN("Print Operators"))
	computerPw := dom.Secrets.New()
	computer, err := dc.CreateComputer(ctx, dom.UniqueName("ws"), dom.Staff, computerPw)
	if err != nil {
		t.Fatal(err)
	}
	plain := r.user("plain")

	agent := r.agent("agent-min", func(c *testbed.AgentConfig) { c.MinimalScope = true })
	cfg, err := os.ReadFile(agent.Files.Config)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(cfg), "protectedGroups") || strings.Contains(string(cfg), "protectAdminCount") || strings.Contains(string(cfg), "protectedAccounts") {
		t.Fatalf("the config is not minimal:\n%s", cfg)
	}
	want := map[string]string{}
	var specs []protocol.RequestSpec
	var what []string
	for _, c := range refused {
		s := r.spec(wire.OpReset, protocol.Target{UserPrincipalName: c.u.UPN}, dom.Secrets.New(), nil)
		specs, what = append(specs, s), append(what, c.what)
	}
	specs = append(specs, r.spec(wire.OpReset, protocol.Target{SAMAccountName: computer.SAMAccountName}, dom.Secrets.New(), nil))
	what = append(what, "computer account")
	specs = append(specs, r.spec(wire.OpReset, protocol.Target{UserPrincipalName: printer.UPN}, dom.Secrets.New(), nil))
	what = append(what, "Print Operator (not allowed)")
	plainPw := dom.Secrets.New()
	specs = append(specs, r.spec(wire.OpReset, protocol.Target{UserPrincipalName: plain.UPN}, plainPw, nil))
	what = append(what, "ordinary user")
	msgs := r.sendAll(specs...)
	for i, m := range msgs {
		want[m.MessageID] = wire.CodeProtectedAccount
		if what[i] == "ordinary user" {
			want[m.MessageID] = wire.CodeOK
		}
	}
	for i, m := range msgs {
		res, err := r.send.Wait(ctx, m.MessageID)
		if err != nil {
			t.Fatalf("%s: %v", what[i], err)
		}
		if res.Code != want[m.MessageID] {
			t.Errorf("%s: result %s, want %s", what[i], res.Code, want[m.MessageID])
		}
	}
	for _, c := range refused {
		if err := dom.CheckPassword(ctx, c.u, c.u.Password); err != nil {
			t.Errorf("%s: the old password no longer binds: %v", c.what, err)
		}
	}
	if err := dom.CheckPassword(ctx, printer, printer.Password); err != nil {
		t.Errorf("print operator: the old password no longer binds: %v", err)
	}
	if code, err := dc.BindCode(ctx, computer.DN, computerPw); err != nil || code != "" {
		t.Errorf("computer account: the old password no longer binds: %q %v", code, err)
	}
	if err := dom.CheckPassword(ctx, plain, plainPw); err != nil {
		t.Errorf("ordinary user: the new password does not bind: %v", err)
	}
	recs := r.auditByID(agent)
	for i, m := range msgs {
		if len(recs[m.MessageID]) == 0 || recs[m.MessageID][0].Code != want[m.MessageID] {
			t.Errorf("%s: audit %+v, want one record with %s", what[i], recs[m.MessageID], want[m.MessageID])
		}
	}
	if err := agent.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}

	// Print Operators allowed: that class, and only it, can be written.
	allow := r.agent("agent-allow", func(c *testbed.AgentConfig) {
		c.MinimalScope, c.AllowPrivileged = true, []string{"Print Operators"}
	})
	printerPw := dom.Secrets.New()
	msgs = r.sendAll(
		r.spec(wire.OpReset, protocol.Target{UserPrincipalName: printer.UPN}, printerPw, nil),
		r.spec(wire.OpReset, protocol.Target{UserPrincipalName: refused[4].u.UPN}, dom.Secrets.New(), nil))
	for i, code := range []string{wire.CodeOK, wire.CodeProtectedAccount} {
		res, err := r.send.Wait(ctx, msgs[i].MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != code {
			t.Errorf("with Print Operators allowed, request %d: %s, want %s", i, res.Code, code)
		}
	}
	if err := dom.CheckPassword(ctx, printer, printerPw); err != nil {
		t.Errorf("print operator with the class allowed: the new password does not bind: %v", err)
	}
	if err := dom.CheckPassword(ctx, refused[4].u, refused[4].u.Password); err != nil {
		t.Errorf("backup operator with Print Operators allowed: the old password no longer binds: %v", err)
	}
	out, _ := runCLI(ctx, "check", "--config", allow.Files.Config)
	if !warnRow(out, "privileged class allowed: Print Operators") {
		t.Errorf("check does not warn about allowPrivileged:\n%s", out)
	}
}

// A config without includeOUs stops both check and run, naming the key.
func TestNoIncludeOUsStopsCheckAndRun(t *testing.T) {
	r := newRun(t, false)
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: r.dir + "/noscope", Queue: requestQueue, Keys: r.keys, MinimalScope: true}, dom)
	if err != nil {
		t.Fatal(err)
	}
	err = files.EditConfig(func(c string) (string, error) {
		lines := strings.Split(c, "\n")
		kept := slices.DeleteFunc(slices.Clone(lines), func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "includeOUs:") })
		if len(kept) == len(lines) {
			return "", fmt.Errorf("no includeOUs line in\n%s", c)
		}
		return strings.Join(kept, "\n"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"check", "run"} {
		out, err := runCLI(r.ctx, cmd, "--config", files.Config)
		flat := strings.Join(strings.Fields(out), " ")
		if err == nil || !strings.Contains(flat, "directory.scope.includeOUs: missing") || !strings.Contains(flat, "config line ") {
			t.Errorf("%s without includeOUs: %v, want a config error naming directory.scope.includeOUs:\n%s", cmd, err, out)
		}
	}
}

// warnRow reports whether check's output has a WARN row containing name.
// A row wraps at 80 columns onto indented lines, which belong to it.
func warnRow(out, name string) bool {
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, " ") && len(rows) > 0 {
			rows[len(rows)-1] += " " + strings.TrimSpace(line)
			continue
		}
		rows = append(rows, line)
	}
	for _, r := range rows {
		if strings.HasPrefix(r, "WARN") && strings.Contains(strings.Join(strings.Fields(r), " "), name) {
			return true
		}
	}
	return false
}
