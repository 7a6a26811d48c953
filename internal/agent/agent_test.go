package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/config"
	"wbagent/internal/protocol"
	"wbagent/internal/writeback"
)

// pipelineConfig is what a test pipeline's config needs to know.
type pipelineConfig struct {
	dir        string // keys, state, audit and the config live here
	queue      string
	sessions   bool
	ldapsURL   string
	caFile     string
	serverName string
	bindUser   string
	bindPass   string
	baseDN     string
	realm      string
	netbios    string
	includeOU  string
}

// writePipelineConfig creates agent and sender keys in c.dir and a config
// file using them, and returns the loaded config.
func writePipelineConfig(t *testing.T, c pipelineConfig) *config.Config {
	t.Helper()
	keys := filepath.Join(c.dir, "keys")
	if _, err := protocol.WriteAgentKeys(keys, protocol.SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteSenderKeys(filepath.Join(c.dir, "sender")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "bind.secret"), []byte(c.bindPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	scope := ""
	if c.includeOU != "" {
		scope = fmt.Sprintf("  scope: {includeOUs: [%q]}\n", c.includeOU)
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
`, protocol.AgentHPKEKeyFile, protocol.AgentSignKeyFile, protocol.SenderPubFile, c.queue, c.sessions,
		c.realm, c.netbios, c.baseDN, c.ldapsURL, c.caFile, c.serverName, c.bindUser, scope)
	path := filepath.Join(c.dir, "wbagent.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("load test config: %v\n%s", err, yml)
	}
	return cfg
}

func offlineConfig(t *testing.T) *config.Config {
	return writePipelineConfig(t, pipelineConfig{
		dir: t.TempDir(), queue: "password-writeback", sessions: true,
		ldapsURL: "ldaps://127.0.0.1:1", caFile: "/nonexistent-ca.pem", bindUser: "svc@corp.example.test", bindPass: "bind-Passw0rd",
		baseDN: "DC=corp,DC=example,DC=test", realm: "corp.example.test", netbios: "CORP", includeOU: "OU=Staff,DC=corp,DC=example,DC=test",
	})
}

func testEnv(vars map[string]string) Deps {
	return Deps{Logger: zap.NewNop(), Getenv: func(k string) string { return vars[k] }, Clock: writeback.SystemClock{}}
}

// Building the pipeline touches files only: no server is needed, and a
// dead DC or bus does not stop the service from starting.
func TestPipelineBuildsWithoutServers(t *testing.T) {
	cfg := offlineConfig(t)
	env := testEnv(map[string]string{"TEST_SB_CONNECTION": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true"})
	p, err := New(context.Background(), cfg, env)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	checks := p.ReadyChecks()
	for _, name := range []string{"directory", "servicebus", "audit"} {
		if checks[name] == nil {
			t.Fatalf("no %s readiness check", name)
		}
	}
	// Nothing answers: the directory and the bus are not ready.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if checks["directory"](ctx) == nil || checks["servicebus"](ctx) == nil {
		t.Fatal("ready without a DC or bus")
	}
	if err := checks["audit"](ctx); err != nil {
		t.Fatalf("audit not ready: %v", err)
	}
	if err := p.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cfg.Agent.StateDir, "ledger.db")); err != nil {
		t.Fatalf("no ledger in the state folder: %v", err)
	}
}

func TestPipelineConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		name string
		edit func(*config.Config)
		vars map[string]string
		want string
	}{
		{"missing decryption key", func(c *config.Config) { c.Agent.DecryptionKeys[0] += ".missing" }, nil, "agent.decryptionKeys[0]"},
		{"missing signing key", func(c *config.Config) { c.Agent.SigningKey += ".missing" }, nil, "agent.signingKey"},
		{"missing sender key", func(c *config.Config) { c.Agent.TrustedSenders[0].PublicKey += ".missing" }, nil, "agent.trustedSenders[0]"},
		{"no connection string", func(*config.Config) {}, map[string]string{}, "servicebus.connectionString"},
		{"bad connection string", func(*config.Config) {}, map[string]string{"TEST_SB_CONNECTION": "Endpoint=nope;SharedAccessKey=topsecret"}, "connection string is not valid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := offlineConfig(t)
			c.edit(cfg)
			vars := c.vars
			if vars == nil {
				vars = map[string]string{"TEST_SB_CONNECTION": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true"}
			}
			_, err := New(context.Background(), cfg, testEnv(vars))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want one naming %q", err, c.want)
			}
			if strings.Contains(err.Error(), "topsecret") {
				t.Fatal("the error shows the connection string's key")
			}
		})
	}
}

// A failed build closes what it opened: the next build takes the ledger's
// and the audit file's locks.
func TestFailedPipelineBuildReleasesFiles(t *testing.T) {
	cfg := offlineConfig(t)
	if _, err := New(context.Background(), cfg, testEnv(map[string]string{})); err == nil {
		t.Fatal("built without a connection string")
	}
	p, err := New(context.Background(), cfg, testEnv(map[string]string{"TEST_SB_CONNECTION": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true"}))
	if err != nil {
		t.Fatalf("second build: %v", err)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDirectoryOptionsMapping(t *testing.T) {
	cfg := offlineConfig(t)
	o, err := DirectoryOptions(cfg, os.Getenv)
	if err != nil {
		t.Fatal(err)
	}
	d := o.Domains[0]
	if d.Name != "corp.example.test" || d.NetBIOS != "CORP" || d.Servers[0] != "ldaps://127.0.0.1:1" ||
		d.Bind.User != "svc@corp.example.test" || d.Bind.Password.Reveal() != "bind-Passw0rd" || d.TLS.CAFile != "/nonexistent-ca.pem" {
		t.Fatalf("domain %+v", d)
	}
	if !o.Scope.ProtectAdminCount || len(o.Scope.ProtectedAccounts) != 2 || o.Scope.IncludeOUs[0] != "OU=Staff,DC=corp,DC=example,DC=test" ||
		o.Timeout != 5*time.Second || o.HistoryOnReset != "auto" {
		t.Fatalf("options %+v", o)
	}
	for _, s := range BindPasswords(o) {
		s.Destroy()
	}
	conn, err := BusConnection(cfg, func(string) string { return "Endpoint=sb://h;SharedAccessKeyName=k;SharedAccessKey=x" })
	if err != nil {
		t.Fatal(err)
	}
	if conn.Retry.MaxRetries != 3 || conn.Retry.RetryDelay != 100*time.Millisecond || conn.Retry.MaxRetryDelay != time.Second || conn.ConnectionString.IsEmpty() {
		t.Fatalf("bus connection %+v", conn)
	}
}

// The components name what was built, so a benchmark report can show it
// measured the service's pipeline; secrets never appear.
func TestComponentsNameWhatWasBuilt(t *testing.T) {
	cfg := offlineConfig(t)
	cfg.HTTP.Listen = "127.0.0.1:0"
	p, err := New(context.Background(), cfg, testEnv(map[string]string{"TEST_SB_CONNECTION": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=dGVzdA==;UseDevelopmentEmulator=true"}))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(context.Background())
	got := strings.Join(p.Components(), " ")
	for _, want := range []string{"http=127.0.0.1:0", "directory=ldap", "handler=writeback.Handler", "bus=password-writeback(sessions=true,auth=connectionString)", "audit="} {
		if !strings.Contains(got, want) {
			t.Errorf("components %q lack %q", got, want)
		}
	}
	if strings.Contains(got, "dGVzdA==") {
		t.Fatal("the components show the connection string's key")
	}
}
