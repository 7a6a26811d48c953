package bus

import (
	"net/url"
	"testing"
)

// The proxy for a target: an explicit URL for every host, loopback
// included; none for none; otherwise HTTPS_PROXY unless NO_PROXY or a
// loopback target says otherwise.
func TestProxyFor(t *testing.T) {
	t.Setenv("HTTPS_PROXY", "http://env-proxy.corp.example.test:3128")
	t.Setenv("NO_PROXY", ".internal.example.test")
	t.Setenv("https_proxy", "")
	t.Setenv("no_proxy", "")
	explicit, _ := url.Parse("http://127.0.0.1:8080")
	for _, tc := range []struct {
		name   string
		t      Transport
		target string
		want   string
	}{
		{"environment", Transport{}, "wss://contoso.servicebus.windows.net/$servicebus/websocket", "env-proxy.corp.example.test:3128"},
		{"environment, authority", Transport{}, "https://login.microsoftonline.com/tenant/oauth2/v2.0/token", "env-proxy.corp.example.test:3128"},
		{"NO_PROXY", Transport{}, "wss://bus.internal.example.test/$servicebus/websocket", ""},
		{"environment skips loopback", Transport{}, "wss://localhost:5671/", ""},
		{"none", Transport{Proxy: Proxy{None: true}}, "wss://contoso.servicebus.windows.net/", ""},
		{"explicit, loopback included", Transport{Proxy: Proxy{URL: explicit}}, "wss://localhost:5671/", "127.0.0.1:8080"},
		{"explicit beats NO_PROXY", Transport{Proxy: Proxy{URL: explicit}}, "wss://bus.internal.example.test/", "127.0.0.1:8080"},
	} {
		u, _ := url.Parse(tc.target)
		got, err := tc.t.ProxyFor(u)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		host := ""
		if got != nil {
			host = got.Host
		}
		if host != tc.want {
			t.Errorf("%s: proxy %q, want %q", tc.name, host, tc.want)
		}
	}
}
