package main

import (
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
	out, errOut, code := runCLI(t, "", nil, "check", "--offline", "--config", exampleConfig)
	if code != 0 || strings.Contains(out, "WARN") {
		t.Fatalf("example config: code %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"scope", "only accounts below OU=Staff,DC=corp,DC=example,DC=test", "built-in protection",
		"Domain Admins (<domain SID>-512)", "Backup Operators (S-1-5-32-551)", "Enterprise Admins (<forest root SID>-519)", "computer, trust"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
	path := editedExample(t, "allowPrivileged: []", "allowPrivileged: [print operators]")
	out, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", path)
	if code != 0 {
		t.Fatalf("allowPrivileged: code %d\n%s\n%s", code, out, errOut)
	}
	var warn string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "WARN") {
			warn += line + "\n"
		}
	}
	if !strings.Contains(warn, "privileged class allowed: Print Operators") || !strings.Contains(out, "fix: remove Print Operators") {
		t.Fatalf("no WARN row for the allowed class:\n%s", out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "built-in protection") && strings.Contains(line, "Print Operators") {
			t.Fatalf("the allowed class is still listed as refused:\n%s", line)
		}
	}
	path = editedExample(t, "    includeOUs: [\"OU=Staff,DC=corp,DC=example,DC=test\"]\n", "")
	data, _ := os.ReadFile(path)
	if err := os.WriteFile(path, []byte(strings.Replace(string(data), "entireDomain: false", "entireDomain: true", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", path)
	if code != 0 || !strings.Contains(out, "WARN") || !strings.Contains(out, "entire domain (scope.entireDomain)") {
		t.Fatalf("entireDomain: code %d, want a WARN row\n%s\n%s", code, out, errOut)
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
