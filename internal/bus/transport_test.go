package bus

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/proxy"
	"wbagent/internal/secret"
)

// startSecureDevbus runs devbus with its TLS and WebSocket listeners and
// writes its CA to a file.
func startSecureDevbus(t *testing.T) (srv *devbus.Server, caFile string) {
	t.Helper()
	if testing.Short() {
		t.Skip("bus integration test against devbus (skipped with -short)")
	}
	dir := t.TempDir()
	srv, err := devbus.Start(context.Background(), devbus.Options{Queues: []devbus.QueueConfig{{Name: "q"}},
		TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSDir: dir})
	if err != nil {
		t.Fatalf("start devbus: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	caFile = filepath.Join(dir, "agent-ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, caFile
}

// roundTrip sends one message with plain AMQP and receives it with c.
func roundTrip(t *testing.T, srv *devbus.Server, c Connection) error {
	t.Helper()
	sender := newTestClient(t, srv)
	s, err := sender.NewSender("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte("hello")}, nil); err != nil {
		t.Fatal(err)
	}
	c.Retry = azservicebus.RetryOptions{MaxRetries: 1, RetryDelay: 50 * time.Millisecond, MaxRetryDelay: time.Second}
	client, err := NewClient(c)
	if err != nil {
		return err
	}
	defer client.Close(context.Background())
	r, err := client.NewReceiverForQueue("q", nil)
	if err != nil {
		return err
	}
	msgs, err := r.ReceiveMessages(ctx, 1, nil)
	if err != nil {
		return err
	}
	if len(msgs) != 1 || string(msgs[0].Body) != "hello" {
		t.Fatalf("received %d messages", len(msgs))
	}
	return r.CompleteMessage(ctx, msgs[0], nil)
}

// webSocketsVia is srv's WebSocket listener, trusting caFile, through p as
// user agent with password.
func webSocketsVia(srv *devbus.Server, caFile string, p *proxy.Proxy, password string) Connection {
	return Connection{ConnectionString: srv.WebSocketConnectionString(),
		Transport: Transport{WebSockets: true, CAFile: caFile,
			Proxy: Proxy{URL: p.URL(), User: "agent", Password: secret.FromString(password)}}}
}

func TestTransportTLSAndWebSocketsThroughProxy(t *testing.T) {
	srv, caFile := startSecureDevbus(t)
	ws := "localhost:" + portOf(srv.WebSocketAddr())
	t.Run("amqp over TLS with the private CA", func(t *testing.T) {
		err := roundTrip(t, srv, Connection{ConnectionString: srv.TLSConnectionString(),
			Transport: Transport{CAFile: caFile}})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("websockets through tinyproxy with basic auth", func(t *testing.T) {
		p := proxy.StartTest(t, proxy.Options{User: "agent", Password: "s3cret-proxy"})
		if err := roundTrip(t, srv, webSocketsVia(srv, caFile, p, "s3cret-proxy")); err != nil {
			t.Fatal(err)
		}
		if got := p.Connects(); len(got) == 0 || got[0] != ws {
			t.Fatalf("the proxy saw CONNECT %v, want %s:\n%s", got, ws, p.Log())
		}
	})
	t.Run("wrong proxy password", func(t *testing.T) {
		p := proxy.StartTest(t, proxy.Options{User: "agent", Password: "s3cret-proxy"})
		err := roundTrip(t, srv, webSocketsVia(srv, caFile, p, "wrong"))
		// The SDK's error does not unwrap to the dialer's; its text does
		// carry it.
		if err == nil || !strings.Contains(err.Error(), "refused CONNECT to "+ws+" with HTTP 401") || !strings.Contains(err.Error(), "servicebus.proxyAuth") {
			t.Fatalf("got %v, want the proxy's 401", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
	t.Run("proxy refuses CONNECT to the port", func(t *testing.T) {
		p := proxy.StartTest(t, proxy.Options{ConnectPorts: []int{443}})
		err := roundTrip(t, srv, Connection{ConnectionString: srv.WebSocketConnectionString(),
			Transport: Transport{WebSockets: true, CAFile: caFile, Proxy: Proxy{URL: p.URL()}}})
		if err == nil || !strings.Contains(err.Error(), "refused CONNECT to "+ws+" with HTTP 403") {
			t.Fatalf("got %v, want the proxy's 403", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		err := roundTrip(t, srv, Connection{ConnectionString: srv.WebSocketConnectionString(),
			Transport: Transport{WebSockets: true, Proxy: Proxy{None: true}}})
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Fatalf("got %v, want an unknown authority error", err)
		}
	})
}

func TestEmulatorOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		ws       bool
		want     string
	}{
		{"sb://localhost:5672", false, ""},
		{"sb://127.0.0.5:5672", false, ""},
		{"sb://[::1]:5672", false, ""},
		{"sb://bus.corp.example:5672", false, "accepted only for a loopback endpoint"},
		{"sb://10.0.0.4", false, "accepted only for a loopback endpoint"},
		{"sb://localhost:5672", true, "cannot use transport websockets"},
	} {
		cs := secret.FromString("Endpoint=" + tc.endpoint + ";SharedAccessKeyName=k;SharedAccessKey=c2VjcmV0LWtleQ==;UseDevelopmentEmulator=true")
		_, err := NewClient(Connection{ConnectionString: cs, Transport: Transport{WebSockets: tc.ws}})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.endpoint, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.endpoint, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "c2VjcmV0LWtleQ"):
			t.Errorf("the error shows the key: %v", err)
		}
	}
}

func portOf(hostport string) string { return hostport[strings.LastIndex(hostport, ":")+1:] }
