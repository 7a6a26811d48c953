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
	"wbagent/internal/lab/testbed"
	"wbagent/internal/secret"
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
  scope: {includeOUs: ["OU=Staff,DC=corp,DC=example,DC=test"]}
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
	ctx := testbed.IntegrationContext(t, "integration test: devbus and tinyproxy", 3*time.Minute)
	dir := t.TempDir()
	srv := testbed.StartDevbus(ctx, t, devbus.Options{TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSDir: dir, AcceptSessionTimeout: time.Second,
		Queues: []devbus.QueueConfig{{Name: "requests"}, {Name: "replies"}}})
	caFile := filepath.Join(dir, devbus.CAFile)
	env := map[string]string{
		"SB_WS":    srv.WebSocketConnectionString().Reveal(),
		"SB_TLS":   srv.TLSConnectionString().Reveal(),
		"PROXY_PW": "pr0xy-pass",
	}
	getenv := func(k string) string { return env[k] }
	open := proxy.StartTest(t, proxy.Options{})
	authed := proxy.StartTest(t, proxy.Options{User: "agent", Password: "pr0xy-pass"})
	strict := proxy.StartTest(t, proxy.Options{ConnectPorts: []int{443}})
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
			wantBusRows(t, busChecks(ctx, busOnlyConfig(t, tc.sb), getenv), tc.ok, tc.want, "pr0xy-pass", "SharedAccessKey=")
		})
	}
	if got := open.Connects(); len(got) == 0 {
		t.Fatalf("the proxy logged no CONNECT:\n%s", open.Log())
	}
}

// wantBusRows fails unless rows pass (ok) or have exactly one FAIL row
// (!ok), show each of want in that order, and show none of secrets.
func wantBusRows(t *testing.T, rows []checkRow, ok bool, want []string, secrets ...string) {
	t.Helper()
	out := rowsText(rows)
	t.Logf("\n%s", out)
	if failed := strings.Contains(out, "FAIL"); failed == ok {
		t.Fatalf("ok = %v, want %v:\n%s", !failed, ok, out)
	}
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q (in order):\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
	if !ok && strings.Count(out, "FAIL") != 1 {
		t.Fatalf("one thing is wrong, yet:\n%s", out)
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("the rows show a secret:\n%s", out)
		}
	}
}

// entraTestTenant is the stand-in's tenant in these tests.
const entraTestTenant = "3c9d5e7a-wbagent-test"

// TestCheckEntraCredentials runs the bus rows with Entra ID credentials
// against devbus's stand-in: a secret and a certificate get tokens and
// the rights; a wrong secret, an expired certificate and an app without
// Listen each give one FAIL row that names it.
func TestCheckEntraCredentials(t *testing.T) {
	ctx := testbed.IntegrationContext(t, "integration test: devbus with its Entra ID stand-in", 3*time.Minute)
	dir := t.TempDir()
	now := time.Now()
	certFile, expiredFile := filepath.Join(dir, "app-cert.pem"), filepath.Join(dir, "app-expired.pem")
	cert := testbed.WriteClientCert(t, certFile, now.Add(-time.Hour), now.Add(24*time.Hour))
	expired := testbed.WriteClientCert(t, expiredFile, now.Add(-48*time.Hour), now.Add(-24*time.Hour))
	srv := testbed.StartDevbus(ctx, t, devbus.Options{TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSDir: dir,
		Queues: []devbus.QueueConfig{{Name: "requests"}, {Name: "replies"}},
		Entra: &devbus.EntraOptions{Tenant: entraTestTenant, Clients: []devbus.EntraClient{
			{ID: "app-secret", Secret: secret.FromString("s3cret-value"), Listen: true, Send: true},
			{ID: "app-cert", Certificate: cert, Listen: true, Send: true},
			{ID: "app-expired", Certificate: expired, Listen: true, Send: true},
			{ID: "app-sender", Secret: secret.FromString("s3nder-value"), Send: true},
			{ID: "app-reader", Secret: secret.FromString("r3ader-value"), Listen: true},
		}}})
	env := map[string]string{"APP_SECRET": "s3cret-value", "WRONG_SECRET": "not-the-secret", "SENDER_SECRET": "s3nder-value", "READER_SECRET": "r3ader-value"}
	getenv := func(k string) string { return env[k] }
	ws := "localhost" + srv.WebSocketAddr()[strings.LastIndex(srv.WebSocketAddr(), ":"):]
	base := "  namespace: " + ws + "\n  queue: requests\n  replyQueues: [replies]\n  transport: websockets\n  proxy: none\n  tls: {caFile: " +
		filepath.Join(dir, devbus.CAFile) + "}\n"
	cred := func(s string) string {
		return "  credential: {tenantId: " + entraTestTenant + ", authorityHost: \"" + srv.AuthorityHost() + "\", " + s + "}\n"
	}
	for _, tc := range []struct {
		name, sb string
		ok       bool
		want     []string
	}{
		{"client secret", base + cred("type: clientSecret, clientId: app-secret, clientSecret: {env: APP_SECRET}"), true,
			[]string{"OK  service bus TLS " + ws, "OK  service bus token: credential clientSecret, tenant " + entraTestTenant + ", client app-secret: token issued",
				"OK  service bus queue requests", "OK  service bus reply queue replies"}},
		{"client certificate", base + cred("type: clientCertificate, clientId: app-cert, certificateFile: "+certFile), true,
			[]string{"OK  service bus token: credential clientCertificate", "client app-cert: token issued", "OK  service bus queue requests", "OK  service bus reply queue replies"}},
		{"wrong secret", base + cred("type: clientSecret, clientId: app-secret, clientSecret: {env: WRONG_SECRET}"), false,
			[]string{"FAIL  service bus token: credential clientSecret, tenant " + entraTestTenant + ", client app-secret: AADSTS7000215", "the client secret is wrong or expired"}},
		{"expired certificate", base + cred("type: clientCertificate, clientId: app-expired, certificateFile: "+expiredFile), false,
			[]string{"FAIL  service bus token: credential clientCertificate", "client app-expired: the client certificate \"wbagent-app-expired.pem\" expired on", "issue a new certificate"}},
		{"no Listen right", base + cred("type: clientSecret, clientId: app-sender, clientSecret: {env: SENDER_SECRET}"), false,
			[]string{"OK  service bus token", "FAIL  service bus queue requests", "Listen"}},
		{"no Send right", base + cred("type: clientSecret, clientId: app-reader, clientSecret: {env: READER_SECRET}"), false,
			[]string{"OK  service bus token", "OK  service bus queue requests", "FAIL  service bus reply queue replies: Send refused", "Azure Service Bus Data Sender"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			secrets := make([]string, 0, len(env))
			for _, s := range env {
				secrets = append(secrets, s)
			}
			wantBusRows(t, busChecks(ctx, busOnlyConfig(t, tc.sb), getenv), tc.ok, tc.want, secrets...)
		})
	}
}

// TestCheckRefusesRemoteEmulator: UseDevelopmentEmulator=true (plain AMQP)
// fails the bus rows for an endpoint that is not this machine, and only
// warns on loopback.
func TestCheckRefusesRemoteEmulator(t *testing.T) {
	for _, tc := range []struct{ endpoint, want string }{
		{"sb://bus.corp.example.test:5672", "FAIL  service bus TLS: UseDevelopmentEmulator=true is plain AMQP without TLS and is accepted only for a loopback endpoint"},
		{"sb://127.0.0.1:1", "WARN  service bus TLS: UseDevelopmentEmulator=true: plain AMQP to 127.0.0.1:1 on this machine"},
	} {
		cs := "Endpoint=" + tc.endpoint + ";SharedAccessKeyName=k;SharedAccessKey=a2V5"
		cfg := busOnlyConfig(t, "  connectionString: {env: SB}\n")
		rows, _ := transportChecks(context.Background(), cfg, func(string) string { return cs + ";UseDevelopmentEmulator=true" })
		if out := rowsText(rows); !strings.Contains(out, tc.want) {
			t.Errorf("%s:\n%s\nwant %q", tc.endpoint, out, tc.want)
		}
	}
}
