package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
)

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// writeRunConfig writes keys and a config whose dependencies (bus and
// directory) are closed ports: the agent must still start, serve /healthz,
// report not ready, and stop cleanly.
func writeRunConfig(t *testing.T, httpAddr string) string {
	t.Helper()
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	if _, err := protocol.WriteAgentKeys(keys, protocol.SuiteXWing); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteSenderKeys(filepath.Join(dir, "sender")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bind.secret"), []byte("Bind-Secret-123!"), 0o600); err != nil {
		t.Fatal(err)
	}
	busPort, dcPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`version: 1
agent:
  name: test-agent
  stateDir: state
  decryptionKeys: [keys/agent-hpke.key]
  signingKey: keys/agent-sign.key
  trustedSenders: [{name: portal, publicKey: sender/sender.pub}]
  gracePeriod: 5s
servicebus:
  connectionString: {value: "Endpoint=sb://%s;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=UnusedKey123;UseDevelopmentEmulator=true"}
  queue: requests
  sessions: false
  retry: {maxRetries: 1, retryDelay: 100ms, maxRetryDelay: 200ms}
directory:
  domains:
    - name: corp.example.test
      servers: [ldaps://%s]
      bind: {user: svc@corp.example.test, password: {file: bind.secret}}
  scope: {includeOUs: ["OU=Staff,DC=corp,DC=example,DC=test"]}
  timeout: 1s
audit: {file: logs/audit.jsonl, eventLog: false}
log: {level: debug, file: {path: logs/wbagent.log}}
http: {listen: %q}
`, busPort, dcPort, httpAddr)
	path := filepath.Join(dir, "wbagent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRunServesHealthAndStopsOnSignal(t *testing.T) {
	addr := freePort(t)
	cfgPath := writeRunConfig(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	var stderr syncBuffer
	env := &cmdEnv{stdin: strings.NewReader(""), stdout: &stderr, stderr: &stderr, getenv: func(string) string { return "" }}
	done := make(chan error, 1)
	go func() { done <- runEnv(ctx, env, []string{"run", "--config", cfgPath}) }()

	var health *http.Response
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			health = resp
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no /healthz: %v\n%s", err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	health.Body.Close()
	if health.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %d", health.StatusCode)
	}
	ready, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	ready.Body.Close()
	if ready.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with no directory and no bus: want 503, got %d", ready.StatusCode)
	}
	cancel() // what SIGTERM does through main's signal context
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run returned %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatalf("run did not stop within the grace period\n%s", stderr.String())
	}
	out := stderr.String()
	for _, want := range []string{`"msg":"wbagent starting"`, `"version":`, `"msg":"stopped"`, "[REDACTED]"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s", want)
		}
	}
	if strings.Contains(out, "UnusedKey123") || strings.Contains(out, "Bind-Secret-123!") {
		t.Fatal("a secret reached the log")
	}
}

func TestRunRefusesBrokenInstall(t *testing.T) {
	cfgPath := writeRunConfig(t, freePort(t))
	if err := os.Remove(filepath.Join(filepath.Dir(cfgPath), "keys", "agent-sign.key")); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", nil, "run", "--config", cfgPath)
	if code == 0 || !strings.Contains(errOut, "agent-sign.key") {
		t.Fatalf("missing signing key: code %d %q", code, errOut)
	}
}

// TestRunProcessSIGTERM runs the built binary as the service manager would
// and stops it with SIGTERM: it must answer /healthz, then exit 0 within
// the grace period.
func TestRunProcessSIGTERM(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "builds the binary", 2*time.Minute)
	bin, err := testbed.BuildAgent(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	cfgPath := writeRunConfig(t, addr)
	var out syncBuffer
	cmd := exec.CommandContext(ctx, bin, "run", "--config", cfgPath)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no /healthz from the process: %v\n%s", err, out.String())
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
	}
	if took := time.Since(start); took > 5*time.Second { // the config's grace period
		t.Fatalf("took %v to stop, more than the 5s grace period", took)
	}
	if !strings.Contains(out.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", out.String())
	}
}
