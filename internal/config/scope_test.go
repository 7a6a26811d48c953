package config

import (
	"strings"
	"testing"
)

// The valid forms of the scope and of discovery load, and allowPrivileged
// names are stored in their canonical spelling.
func TestScopeForms(t *testing.T) {
	entire := strings.Replace(minimal, `{includeOUs: ["OU=Staff,DC=corp,DC=example,DC=test"]}`, "{entireDomain: true}", 1)
	c, err := Parse([]byte(entire), "/etc/wbagent/wbagent.yaml")
	if err != nil || !c.Directory.Scope.EntireDomain || len(c.Directory.Scope.IncludeOUs) != 0 {
		t.Fatalf("entireDomain alone: %v", err)
	}
	allow := strings.Replace(minimal, "{includeOUs:", "{allowPrivileged: [print operators, KRBTGT], includeOUs:", 1)
	c, err = Parse([]byte(allow), "/etc/wbagent/wbagent.yaml")
	if err != nil || strings.Join(c.Directory.Scope.AllowPrivileged, ",") != "Print Operators,krbtgt" {
		t.Fatalf("allowPrivileged: %v %v", err, c)
	}
	spaced := strings.Replace(minimal, `"OU=Staff,DC=corp,DC=example,DC=test"`, `"ou=Staff, dc=CORP, dc=example, dc=test"`, 1)
	if _, err := Parse([]byte(spaced), "/etc/wbagent/wbagent.yaml"); err != nil {
		t.Fatalf("an OU spelt with spaces and other case: %v", err)
	}
	disc := strings.Replace(minimal, "      servers: [", "      discover: true\n      tls: {caFile: /etc/wbagent/ca.pem}\n      servers: [", 1)
	c, err = Parse([]byte(disc), "/etc/wbagent/wbagent.yaml")
	if err != nil || !c.Directory.Domains[0].Discover || len(c.Directory.Domains[0].Servers) != 1 {
		t.Fatalf("servers with discovery and a CA: %v", err)
	}
	pinned := strings.Replace(minimal, "      servers: [", "      discover: true\n      tls: {pinSHA256: [\"JGV77jNFcowBleD4MRAxo838Ni1FmoKzDUBK/D5rRDI=\"]}\n      servers: [", 1)
	if _, err := Parse([]byte(pinned), "/etc/wbagent/wbagent.yaml"); err != nil {
		t.Fatalf("discovery anchored by a pin instead of a CA file: %v", err)
	}
	two := strings.Replace(minimal, "  scope:", `    - name: emea.example.test
      servers: [ldaps://dc1.emea.example.test:636]
      bind: {user: svc@emea.example.test, password: {file: bind.secret}}
  scope:`, 1)
	_, err = Parse([]byte(two), "/etc/wbagent/wbagent.yaml")
	if err == nil || !strings.Contains(err.Error(), "no OU inside domain emea.example.test (directory.domains[1]") {
		t.Fatalf("a second domain without an OU: %v", err)
	}
}
