package testbed

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"wbagent/internal/config"
	"wbagent/internal/protocol"
)

// PipelineConfig is what a test agent's config needs to know: the DC, the
// queue and where its keys, state and audit trail live.
type PipelineConfig struct {
	Dir        string // keys, state, audit and the config live here
	Queue      string
	Sessions   bool
	LDAPSURL   string
	CAFile     string
	ServerName string
	BindUser   string
	BindPass   string
	BaseDN     string
	Realm      string
	NetBIOS    string
	IncludeOU  string
}

// writePipelineConfig creates agent and sender keys in c.Dir and a config
// file using them, and returns the loaded config.
func WritePipelineConfig(t testing.TB, c PipelineConfig) *config.Config {
	t.Helper()
	keys := filepath.Join(c.Dir, "keys")
	if _, err := protocol.WriteAgentKeys(keys, protocol.SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteSenderKeys(filepath.Join(c.Dir, "sender")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.Dir, "bind.secret"), []byte(c.BindPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scope := ""
	if c.IncludeOU != "" {
		scope = fmt.Sprintf("  scope: {includeOUs: [%q]}\n", c.IncludeOU)
	}
	yml := fmt.Sprintf(`version: 1
agent:
  name: test-agent
  stateDir: state
  decryptionKeys: [keys/%s]
  signingKey: keys/%s
  trustedSenders: [{name: portal, publicKey: sender/%s}]
servicebus:
  connectionString: {env: TEST_SB_CONNECTION}
  queue: %s
  sessions: %v
  maxConcurrent: 4
  settleTimeout: 5s
  sessionIdleTimeout: 1s
  retry: {maxRetries: 3, retryDelay: 100ms, maxRetryDelay: 1s}
directory:
  domains:
    - name: %s
      netbios: %s
      baseDN: %q
      servers: [%s]
      tls: {caFile: %q, serverName: %q}
      bind: {method: simple, user: %s, password: {file: bind.secret}}
%s  timeout: 5s
requests:
  retryBudget: 3s
audit:
  file: audit/audit.jsonl
http:
  listen: ""
`, protocol.AgentHPKEKeyFile, protocol.AgentSignKeyFile, protocol.SenderPubFile, c.Queue, c.Sessions,
		c.Realm, c.NetBIOS, c.BaseDN, c.LDAPSURL, c.CAFile, c.ServerName, c.BindUser, scope)
	path := filepath.Join(c.Dir, "wbagent.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load test config: %v\n%s", err, yml)
	}
	return cfg
}
