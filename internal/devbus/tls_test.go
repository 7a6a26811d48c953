package devbus

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/coder/websocket"

	"wbagent/internal/lab/testkit"
	"wbagent/internal/wsconn"
)

// wsDialer is what a client passes as ClientOptions.NewWebSocketConn: a
// WebSocket over TLS trusting pool, with the AMQP subprotocol.
func wsDialer(pool *x509.CertPool) func(context.Context, azservicebus.NewWebSocketConnArgs) (net.Conn, error) {
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	return func(ctx context.Context, args azservicebus.NewWebSocketConnArgs) (net.Conn, error) {
		ws, _, err := websocket.Dial(ctx, args.Host, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{WebSocketSubprotocol}})
		if err != nil {
			return nil, err
		}
		return wsconn.New(ws, 0), nil
	}
}

func startSecureServer(t testing.TB, dir string, queues ...QueueConfig) *Server {
	t.Helper()
	return startServerWith(t, Options{Queues: queues, TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0", TLSDir: dir})
}

func newClientOpts(t testing.TB, connStr string, opts *azservicebus.ClientOptions) *azservicebus.Client {
	t.Helper()
	opts.RetryOptions = fastRetry
	c, err := azservicebus.NewClientFromConnectionString(connStr, opts)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	testkit.StopAtCleanup(t, 5*time.Second, c.Close)
	return c
}

// TestTLSAndWebSocketListeners sends through each listener and receives
// through another: the SDK on its production paths (amqps:// with a
// private CA, and wss:// through NewWebSocketConn) and the emulator path
// all reach one broker state.
func TestTLSAndWebSocketListeners(t *testing.T) {
	dir := t.TempDir()
	srv := startSecureServer(t, dir, QueueConfig{Name: "q"})
	css := srv.ConnectionStrings()
	if len(css) != 3 {
		t.Fatalf("%d connection strings, want plain, TLS and WebSockets", len(css))
	}
	for i, cs := range css[1:] {
		s := cs.Reveal()
		port := portOf([]net.Listener{srv.tlsLn, srv.wsLn}[i])
		if !strings.HasPrefix(s, "Endpoint=sb://localhost:"+port+"/;SharedAccessKeyName=") || strings.Contains(s, "UseDevelopmentEmulator") {
			t.Fatalf("secure connection string %q", s)
		}
	}
	pem, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil || !bytes.Equal(pem, srv.CACertPEM()) {
		t.Fatalf("CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("ca.pem holds no certificate")
	}
	plain := newClient(t, srv)
	// The SDK names the host with its port as the TLS server name unless
	// the configuration names it: with a port in the endpoint, a client
	// sets ServerName to the host.
	overTLS := newClientOpts(t, css[1].Reveal(), &azservicebus.ClientOptions{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}})
	overWS := newClientOpts(t, css[2].Reveal(), &azservicebus.ClientOptions{NewWebSocketConn: wsDialer(pool)})

	clients := []*azservicebus.Client{plain, overTLS, overWS}
	names := []string{"plain", "TLS", "WebSockets"}
	for i := range clients {
		from, to := clients[i], clients[(i+1)%3]
		// A body above the broker's WebSocket message size and the frame
		// size travels in pieces.
		body := bytes.Repeat([]byte(names[i]), 30000)
		send(t, from, "q", &azservicebus.Message{Body: body})
		r, err := to.NewReceiverForQueue("q", nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := r.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
		if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].Body, body) {
			t.Fatalf("sent over %s, received over %s: %d messages, %v", names[i], names[(i+1)%3], len(msgs), err)
		}
		if err := r.CompleteMessage(testkit.Context(t, 10*time.Second), msgs[0], nil); err != nil {
			t.Fatalf("complete over %s: %v", names[(i+1)%3], err)
		}
		_ = r.Close(context.Background())
	}
	if d := srv.Depth("q"); d != 0 {
		t.Fatalf("depth %d after all were completed", d)
	}
	remotes := 0
	for _, ci := range srv.Connections() {
		if strings.HasPrefix(ci.Remote, "127.0.0.1:") {
			remotes++
		}
	}
	if remotes != 3 {
		t.Fatalf("connections %+v: want three from loopback", srv.Connections())
	}
}

// TestTLSUntrusted: a client that does not trust devbus's CA fails the
// handshake; verification is never skipped.
func TestTLSUntrusted(t *testing.T) {
	srv := startSecureServer(t, t.TempDir(), QueueConfig{Name: "q"})
	c := newClientOpts(t, srv.TLSConnectionString().Reveal(), &azservicebus.ClientOptions{
		TLSConfig:    &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "localhost"},
		RetryOptions: azservicebus.RetryOptions{MaxRetries: -1}})
	s, err := c.NewSender("q", nil)
	if err == nil {
		err = s.SendMessage(testkit.Context(t, 10*time.Second), &azservicebus.Message{Body: []byte("x")}, nil)
	}
	var uae x509.UnknownAuthorityError
	if !errors.As(err, &uae) && (err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority")) {
		t.Fatalf("send over TLS without the CA: %v, want an unknown authority error", err)
	}
}

// TestTLSDirReused: a second start with the same directory keeps the CA
// and the server certificate, so clients keep trusting it.
func TestTLSDirReused(t *testing.T) {
	dir := t.TempDir()
	srv := startSecureServer(t, dir, QueueConfig{Name: "q"})
	ca := srv.CACertPEM()
	cert, _ := os.ReadFile(filepath.Join(dir, serverFile))
	_ = srv.Close()
	srv2 := startSecureServer(t, dir, QueueConfig{Name: "q"})
	cert2, _ := os.ReadFile(filepath.Join(dir, serverFile))
	if !bytes.Equal(ca, srv2.CACertPEM()) || !bytes.Equal(cert, cert2) || len(cert) == 0 {
		t.Fatal("the CA or the server certificate was issued again although present")
	}
	for _, f := range []string{caKeyFile, serverKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", f, err, st.Mode())
		}
	}
	// A server certificate that no longer fits is replaced, the CA kept.
	if err := os.WriteFile(filepath.Join(dir, serverFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	_ = srv2.Close()
	srv3 := startSecureServer(t, dir, QueueConfig{Name: "q"})
	cert3, _ := os.ReadFile(filepath.Join(dir, serverFile))
	if !bytes.Equal(ca, srv3.CACertPEM()) || bytes.Equal(cert3, []byte("garbage")) {
		t.Fatal("a broken server certificate was not replaced, or the CA changed")
	}
	leaf, err := tls.LoadX509KeyPair(filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := x509.ParseCertificate(leaf.Certificate[0])
	for _, name := range serverNames {
		if err := x.VerifyHostname(name); err != nil {
			t.Fatalf("server certificate: %v", err)
		}
	}
}

// TestWebSocketNeedsSubprotocol: a WebSocket without AMQPWSB10 is closed
// with a policy violation that names the subprotocol.
func TestWebSocketNeedsSubprotocol(t *testing.T) {
	srv := startSecureServer(t, t.TempDir(), QueueConfig{Name: "q"})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	ws, _, err := websocket.Dial(testkit.Context(t, 10*time.Second), "wss://localhost:"+portOf(srv.wsLn)+WebSocketPath, &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ws.Read(testkit.Context(t, 10*time.Second))
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || !strings.Contains(ce.Reason, WebSocketSubprotocol) {
		t.Fatalf("read: %v, want a policy violation naming %s", err, WebSocketSubprotocol)
	}
}
