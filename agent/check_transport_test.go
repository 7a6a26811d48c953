package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/proxy"
)

// busOnlyConfig is a config whose servicebus section is sb; the rest is
// only there to validate.
func busOnlyConfig(t *testing.T, sb string) *config.Config {
	t.Helper()
	yaml := `version: 1
agent:
  decryptionKeys: [k]
  signingKey: s
  trustedSenders: [{name: portal, publicKey: p}]
servicebus:
` + sb + `directory:
  domains:
    - name: corp.example.test
      servers: [ldaps://dc1.corp.example.test:636]
      bind: {user: svc@corp.example.test, password: {env: X}}
`
	cfg, err := config.Parse([]byte(yaml), filepath.Join(t.TempDir(), "wbagent.yaml"))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	return cfg
}

// rowsText prints rows as check does, one per line, for failure messages
// and assertions.
func rowsText(rows []checkRow) string {
	var b strings.Builder
	for _, r := range rows {
		st := "FAIL"
		switch {
		case r.OK && r.Warn:
			st = "WARN"
		case r.OK:
			st = "OK"
		}
		b.WriteString(st + "  " + r.Name + ": " + r.Detail)
		if !r.OK || r.Warn {
			b.WriteString("  → " + r.Fix)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestCheckTransportHops runs the bus rows of `check` against devbus's TLS
// and WebSocket listeners and a real tinyproxy: each broken hop gives a
// FAIL row that names it, and the rows after it are not tried.
func TestCheckTransportHops(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: devbus and tinyproxy")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := devbus.Start(ctx, devbus.Options{TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSDir: dir, AcceptSessionTimeout: time.Second,
		Queues: []devbus.QueueConfig{{Name: "requests"}, {Name: "replies"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	caFile := filepath.Join(dir, devbus.CAFile)
	env := map[string]string{
		"SB_WS":    srv.WebSocketConnectionString().Reveal(),
		"SB_TLS":   srv.TLSConnectionString().Reveal(),
		"PROXY_PW": "pr0xy-pass",
	}
	getenv := func(k string) string { return env[k] }
	open, err := proxy.Start(ctx, proxy.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	authed, err := proxy.Start(ctx, proxy.Options{Dir: t.TempDir(), User: "agent", Password: "pr0xy-pass"})
	if err != nil {
		t.Fatal(err)
	}
	defer authed.Close()
	strict, err := proxy.Start(ctx, proxy.Options{Dir: t.TempDir(), ConnectPorts: []int{443}})
	if err != nil {
		t.Fatal(err)
	}
	defer strict.Close()
	dead, err := proxy.DeadAddr()
	if err != nil {
		t.Fatal(err)
	}
	ws := "localhost" + srv.WebSocketAddr()[strings.LastIndex(srv.WebSocketAddr(), ":"):]
	base := "  connectionString: {env: SB_WS}\n  queue: requests\n  replyQueues: [replies]\n  transport: websockets\n"
	for _, tc := range []struct {
		name string
		sb   string
		ok   bool
		want []string // substrings of the output, in order
	}{
		{"websockets, private CA, proxy", base + "  tls: {caFile: " + caFile + "}\n  proxy: " + open.URL().String() + "\n", true,
			[]string{"OK  service bus proxy " + open.Addr + ": CONNECT " + ws + " allowed (HTTP 200",
				"OK  service bus TLS " + ws + ": TLS 1.3, certificate", "issued by", "OK  service bus queue requests", "OK  service bus reply queue replies: Send allowed"}},
		{"proxy with basic auth", base + "  tls: {caFile: " + caFile + "}\n  proxy: " + authed.URL().String() + "\n  proxyAuth: {user: agent, password: {env: PROXY_PW}}\n", true,
			[]string{"OK  service bus proxy " + authed.Addr, "OK  service bus queue requests"}},
		{"amqp over TLS", "  connectionString: {env: SB_TLS}\n  queue: requests\n  tls: {caFile: " + caFile + "}\n", true,
			[]string{"OK  service bus TLS localhost:", "OK  service bus queue requests"}},
		{"dead proxy", base + "  tls: {caFile: " + caFile + "}\n  proxy: http://" + dead + "\n", false,
			[]string{"FAIL  service bus proxy " + dead + ": the proxy is unreachable", "connection refused", "check servicebus.proxy"}},
		{"proxy refuses CONNECT", base + "  tls: {caFile: " + caFile + "}\n  proxy: " + strict.URL().String() + "\n", false,
			[]string{"FAIL  service bus proxy " + strict.Addr + ": CONNECT " + ws + " refused: HTTP 403", "allow CONNECT to " + ws}},
		{"proxy wants credentials", base + "  tls: {caFile: " + caFile + "}\n  proxy: " + authed.URL().String() + "\n", false,
			[]string{"FAIL  service bus proxy " + authed.Addr + ": CONNECT " + ws + " refused: HTTP 407", "set servicebus.proxyAuth"}},
		{"untrusted certificate", base + "  proxy: " + open.URL().String() + "\n", false,
			[]string{"OK  service bus proxy", "FAIL  service bus TLS " + ws + ": x509: certificate signed by unknown authority", "issued by", "servicebus.tls.caFile"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rows := busChecks(ctx, busOnlyConfig(t, tc.sb), getenv)
			out := rowsText(rows)
			t.Logf("\n%s", out)
			failed := strings.Contains(out, "FAIL")
			if failed == tc.ok {
				t.Fatalf("ok = %v, want %v:\n%s", !failed, tc.ok, out)
			}
			rest := out
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			if !tc.ok && strings.Count(out, "FAIL") != 1 {
				t.Fatalf("one hop failed, yet:\n%s", out)
			}
			if strings.Contains(out, "pr0xy-pass") || strings.Contains(out, "SharedAccessKey=") {
				t.Fatalf("the rows show a secret:\n%s", out)
			}
		})
	}
	if got := open.Connects(); len(got) == 0 {
		t.Fatalf("the proxy logged no CONNECT:\n%s", open.Log())
	}
}
