package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/config"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/writeback"
)

func offlineConfig(t *testing.T) *config.Config {
	return testbed.WritePipelineConfig(t, testbed.PipelineConfig{
		Dir: t.TempDir(), Queue: "password-writeback", Sessions: true,
		LDAPSURL: "ldaps://127.0.0.1:1", CAFile: "/nonexistent-ca.pem", BindUser: "svc@corp.example.test", BindPass: "bind-Passw0rd",
		BaseDN: "DC=corp,DC=example,DC=test", Realm: "corp.example.test", NetBIOS: "CORP", IncludeOU: "OU=Staff,DC=corp,DC=example,DC=test",
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
