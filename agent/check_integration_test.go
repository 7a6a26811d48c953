package main

import (
	"strings"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
)

// TestCheckAgainstRealDependencies runs `wbagent check` against a real
// Samba AD DC, with the service account delegated by the installer's
// script, and a devbus: with the rights in place every row passes; with a
// scope OU the account has no rights on, check names the missing right,
// gives the fix and exits non-zero.
func TestCheckAgainstRealDependencies(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "integration test: needs a Samba AD DC", 3*time.Minute)
	dom := testbed.StartDomainTest(ctx, t, testbed.DomainOptions{})
	for _, sessions := range []bool{false, true} {
		b, err := testbed.StartBus(ctx, testbed.BusOptions{Queues: []devbus.QueueConfig{{Name: "requests", RequiresSession: sessions}}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		dir := t.TempDir()
		keys, err := testbed.NewKeys(dir + "/keys")
		if err != nil {
			t.Fatal(err)
		}
		files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: dir, Queue: "requests", Sessions: sessions, Keys: keys}, dom)
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		for _, kv := range testbed.AgentEnv(b, dom) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		// The testbed's scope also holds OU=Other, where nothing is delegated.
		out, errOut, code := runCLI(t, "", env, "check", "--config", files.Config)
		if code != exitError || !strings.Contains(out, "FAIL") || !strings.Contains(out, "delegate") {
			t.Fatalf("sessions=%v: check must fail on the undelegated OU with a fix: code %d\n%s\n%s", sessions, code, out, errOut)
		}
		for _, row := range checkOutputRows(out) {
			if strings.HasPrefix(row, "FAIL") && !strings.Contains(row, "OU=Other") {
				t.Errorf("sessions=%v: unexpected failure: %s", sessions, row)
			}
		}
		// Only the delegated OU in scope: every row passes.
		if err := files.ReplaceInConfig(", "+testbed.Quote(dom.Other), ""); err != nil {
			t.Fatalf("could not drop OU=Other from the scope: %v", err)
		}
		out, errOut, code = runCLI(t, "", env, "check", "--config", files.Config)
		if code != 0 || strings.Contains(out, "FAIL") {
			t.Fatalf("sessions=%v: check with the delegated rights: code %d\n%s\n%s", sessions, code, out, errOut)
		}
		for _, want := range []string{"service bus queue requests", "decryption key 1", "signing key"} {
			if !strings.Contains(out, want) {
				t.Errorf("check output lacks %q:\n%s", want, out)
			}
		}
		t.Logf("sessions=%v:\n%s", sessions, out)
		if strings.Contains(out+errOut, dom.Service.Password.Reveal()) {
			t.Fatal("check printed the bind password")
		}
	}
}

// checkOutputRows splits check's text output into rows: a row's first line
// starts with its result, its wrapped lines and fix line are indented.
func checkOutputRows(out string) []string {
	var rows []string
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, " ") && len(rows) > 0 {
			rows[len(rows)-1] += "\n" + line
			continue
		}
		rows = append(rows, line)
	}
	return rows
}
