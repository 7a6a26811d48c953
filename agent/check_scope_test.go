package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"wbagent/internal/config"
	"wbagent/internal/directory"
)

// config cannot import directory: the two lists of built-in classes must
// stay the same.
func TestPrivilegedNamesInStep(t *testing.T) {
	if !slices.Equal(config.PrivilegedNames, directory.PrivilegedNames()) {
		t.Fatalf("config.PrivilegedNames %v\ndirectory.PrivilegedNames %v", config.PrivilegedNames, directory.PrivilegedNames())
	}
}

// editedExample writes the example config with old replaced by new.
func editedExample(t *testing.T, old, new string) string {
	t.Helper()
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	edited := strings.Replace(string(data), old, new, 1)
	if edited == string(data) {
		t.Fatalf("the example config has no %q", old)
	}
	path := filepath.Join(t.TempDir(), "wbagent.yaml")
	if err := os.WriteFile(path, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// check shows the effective scope and the built-in protections, and warns
// for each privileged class the config allows.
func TestCheckShowsScopeAndWarnsOnAllowedPrivilege(t *testing.T) {
	// The rows are read from --json: the text form wraps at 80 columns.
	type row struct{ Check, Result, Detail, Fix string }
	check := func(path string) (rows []row, text string) {
		t.Helper()
		out, errOut, code := runCLI(t, "", nil, "check", "--offline", "--json", "--config", path)
		var doc struct {
			OK   bool
			Rows []row
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || !doc.OK {
			t.Fatalf("check %s: code %d, %v\n%s\n%s", path, code, err, out, errOut)
		}
		for _, r := range doc.Rows {
			text += r.Result + " " + r.Check + ": " + r.Detail + "\n"
			if r.Fix != "" {
				text += "  fix: " + r.Fix + "\n"
			}
		}
		return doc.Rows, text
	}
	_, out := check(exampleConfig)
	if strings.Contains(out, "WARN") {
		t.Fatalf("example config warns:\n%s", out)
	}
	for _, want := range []string{"scope", "only accounts below OU=Staff,DC=corp,DC=example,DC=test", "built-in protection",
		"Domain Admins (<domain SID>-512)", "Backup Operators (S-1-5-32-551)", "Enterprise Admins (<forest root SID>-519)", "computer, trust"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	rows, out := check(editedExample(t, "allowPrivileged: []", "allowPrivileged: [print operators]"))
	warned := false
	for _, r := range rows {
		if r.Result == "WARN" && strings.Contains(r.Check, "privileged class allowed: Print Operators") && strings.Contains(r.Fix, "remove Print Operators") {
			warned = true
		}
		if strings.Contains(r.Check, "built-in protection") && strings.Contains(r.Detail, "Print Operators") {
			t.Fatalf("the allowed class is still listed as refused:\n%s", r.Detail)
		}
	}
	if !warned {
		t.Fatalf("no WARN row for the allowed class:\n%s", out)
	}
	path := editedExample(t, "    includeOUs: [\"OU=Staff,DC=corp,DC=example,DC=test\"]\n", "")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "entireDomain: false", "entireDomain: true", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, out = check(path); !strings.Contains(out, "WARN") || !strings.Contains(out, "entire domain (scope.entireDomain)") {
		t.Fatalf("entireDomain: want a WARN row\n%s", out)
	}
}

// A config without includeOUs fails check and run, naming the key and its
// line.
func TestNoIncludeOUsFailsCheckAndRun(t *testing.T) {
	path := editedExample(t, "    includeOUs: [\"OU=Staff,DC=corp,DC=example,DC=test\"]\n", "")
	for _, args := range [][]string{{"check", "--offline", "--config", path}, {"check", "--config", path}, {"run", "--config", path}} {
		_, errOut, code := runCLI(t, "", nil, args...)
		if code != exitConfigInvalid || !strings.Contains(errOut, "directory.scope.includeOUs: missing") || !strings.Contains(errOut, "config line ") ||
			!strings.Contains(errOut, "entireDomain: true") {
			t.Fatalf("%v: code %d, want the config error naming directory.scope.includeOUs:\n%s", args, code, errOut)
		}
	}
}
