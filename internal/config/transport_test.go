package config

import (
	"strings"
	"testing"
	"time"
)

func TestTransportDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal), "/etc/wbagent/wbagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sb := c.ServiceBus
	if sb.Transport != TransportAMQP || sb.Proxy != "" || sb.ProxyAuth != nil || sb.Watchdog.D() != 2*time.Minute {
		t.Fatalf("defaults: transport %q proxy %q watchdog %s", sb.Transport, sb.Proxy, sb.Watchdog.D())
	}
}

func TestTransportKeys(t *testing.T) {
	base := strings.Replace(minimal, "  connectionString: {env: WBAGENT_SB_CONNECTION}\n", "  connectionString: {env: WBAGENT_SB_CONNECTION}\n%s", 1)
	ok := []struct{ name, add string }{
		{"websockets through a proxy with auth", "  transport: websockets\n  tls: {caFile: ca.pem}\n  proxy: http://127.0.0.1:3128\n  proxyAuth: {user: u, password: {env: P}}\n  watchdog: 30s\n"},
		{"no proxy", "  transport: amqp\n  proxy: none\n"},
	}
	for _, tc := range ok {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(strings.Replace(base, "%s", tc.add, 1)), "/etc/wbagent/wbagent.yaml")
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "websockets through a proxy with auth" && c.ServiceBus.TLS.CAFile != "/etc/wbagent/ca.pem" {
				t.Errorf("caFile not resolved against the config folder: %q", c.ServiceBus.TLS.CAFile)
			}
		})
	}
	bad := []struct{ name, add, want string }{
		{"proxy with amqp", "  proxy: http://127.0.0.1:3128\n", "set servicebus.transport: websockets"},
		{"unknown transport", "  transport: tcp\n", `"tcp" is not known`},
		{"proxy without scheme", "  transport: websockets\n  proxy: proxy.corp:8080\n", "is not a proxy URL"},
		{"https proxy", "  transport: websockets\n  proxy: socks5://proxy.corp:1080\n", "use an http:// proxy"},
		{"password in the URL", "  transport: websockets\n  proxy: http://u:hunter2@proxy.corp:8080\n", "move them to servicebus.proxyAuth"},
		{"auth without proxy", "  proxyAuth: {user: u, password: {env: P}}\n", "only used with servicebus.proxy"},
		{"auth without password", "  transport: websockets\n  proxy: http://p:1\n  proxyAuth: {user: u}\n", "needs user and password"},
		{"watchdog too short", "  watchdog: 10ms\n", "too short"},
		{"reply queue path", "  replyQueues: [replies/sub]\n", `"replies/sub" is not a queue name`},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(strings.Replace(base, "%s", tc.add, 1)), "/etc/wbagent/wbagent.yaml")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error shows the proxy password: %v", err)
			}
		})
	}
}

func TestCredentialKinds(t *testing.T) {
	ns := strings.Replace(minimal, "  connectionString: {env: WBAGENT_SB_CONNECTION}\n", "  namespace: contoso.servicebus.windows.net\n  credential: %s\n", 1)
	c, err := Parse([]byte(strings.Replace(ns, "%s", "{type: clientCertificate, tenantId: t, clientId: c, certificateFile: entra.pem, authorityHost: \"https://login.example.test\"}", 1)), "/etc/wbagent/wbagent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cr := c.ServiceBus.Credential; cr.CertificateFile != "/etc/wbagent/entra.pem" || cr.AuthorityHost != "https://login.example.test/" {
		t.Fatalf("credential: %+v", cr)
	}
	for _, tc := range []struct{ cred, want string }{
		{"{type: clientCertificate, tenantId: t, clientId: c}", "needs tenantId, clientId and certificateFile"},
		{"{type: clientSecret, tenantId: t, clientId: c, clientSecret: {env: S}, authorityHost: \"http://login.example.test\"}", "is not an https:// URL"},
		{"{type: password}", "use default, managedIdentity, workloadIdentity, clientSecret or clientCertificate"},
	} {
		_, err := Parse([]byte(strings.Replace(ns, "%s", tc.cred, 1)), "/etc/wbagent/wbagent.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.cred, err, tc.want)
		}
	}
}
