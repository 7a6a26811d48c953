package bus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/coder/websocket"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/proxy"
	"wbagent/internal/secret"
)

// tlsFront serves a plain devbus over TLS (AMQP) and over WebSockets over
// TLS, the two ways production reaches Service Bus, with a CA of its own.
type tlsFront struct {
	caFile string
	amqps  string // host:port
	wss    string // host:port
}

func startTLSFront(t *testing.T, backend string) *tlsFront {
	t.Helper()
	dir := t.TempDir()
	cert, caPEM := testCertificate(t)
	f := &tlsFront{caFile: filepath.Join(dir, "ca.pem")}
	if err := os.WriteFile(f.caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	pipe := func(a net.Conn) {
		defer a.Close()
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		done := make(chan struct{}, 2)
		go func() { _, _ = io.Copy(b, a); done <- struct{}{} }()
		go func() { _, _ = io.Copy(a, b); done <- struct{}{} }()
		<-done
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go pipe(c)
		}
	}()
	f.amqps = "localhost:" + portOf(ln.Addr())
	wln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(WebSocketPath, func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{WebSocketSubprotocol}})
		if err != nil {
			return
		}
		pipe(websocket.NetConn(context.Background(), c, websocket.MessageBinary))
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = hs.Serve(wln) }()
	t.Cleanup(func() { _ = hs.Close() })
	f.wss = "localhost:" + portOf(wln.Addr())
	return f
}

func portOf(a net.Addr) string { return a.String()[strings.LastIndex(a.String(), ":")+1:] }

// testCertificate issues a CA and a localhost server certificate.
func testCertificate(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bus test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), DNSNames: []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// frontConnectionString is srv's connection string for the endpoint
// host:port, without UseDevelopmentEmulator.
func frontConnectionString(srv *devbus.Server, hostport string) *secret.Secret {
	var parts []string
	for _, p := range strings.Split(srv.ConnectionString().Reveal(), ";") {
		switch {
		case strings.HasPrefix(p, "Endpoint="):
			parts = append(parts, "Endpoint=sb://"+hostport+"/")
		case strings.HasPrefix(p, "UseDevelopmentEmulator="):
		default:
			parts = append(parts, p)
		}
	}
	return secret.FromString(strings.Join(parts, ";"))
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

func TestTransportTLSAndWebSocketsThroughProxy(t *testing.T) {
	srv := startDevbus(t, devbus.QueueConfig{Name: "q"})
	f := startTLSFront(t, srv.Addr())
	t.Run("amqp over TLS with the private CA", func(t *testing.T) {
		err := roundTrip(t, srv, Connection{ConnectionString: frontConnectionString(srv, f.amqps),
			Transport: Transport{CAFile: f.caFile}})
		if err != nil {
			t.Fatal(err)
		}
	})
	t.Run("websockets through tinyproxy with basic auth", func(t *testing.T) {
		p, err := proxy.Start(context.Background(), proxy.Options{Dir: t.TempDir(), User: "agent", Password: "s3cret-proxy"})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		err = roundTrip(t, srv, Connection{ConnectionString: frontConnectionString(srv, f.wss),
			Transport: Transport{WebSockets: true, CAFile: f.caFile,
				Proxy: Proxy{URL: p.URL(), User: "agent", Password: secret.FromString("s3cret-proxy")}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Connects(); len(got) == 0 || got[0] != f.wss {
			t.Fatalf("the proxy saw CONNECT %v, want %s:\n%s", got, f.wss, p.Log())
		}
	})
	t.Run("wrong proxy password", func(t *testing.T) {
		p, err := proxy.Start(context.Background(), proxy.Options{Dir: t.TempDir(), User: "agent", Password: "s3cret-proxy"})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		err = roundTrip(t, srv, Connection{ConnectionString: frontConnectionString(srv, f.wss),
			Transport: Transport{WebSockets: true, CAFile: f.caFile,
				Proxy: Proxy{URL: p.URL(), User: "agent", Password: secret.FromString("wrong")}}})
		// The SDK's error does not unwrap to the dialer's; its text does
		// carry it.
		if err == nil || !strings.Contains(err.Error(), "refused CONNECT to "+f.wss+" with HTTP 401") || !strings.Contains(err.Error(), "servicebus.proxyAuth") {
			t.Fatalf("got %v, want the proxy's 401", err)
		}
		if strings.Contains(err.Error(), "wrong") {
			t.Fatalf("the error shows the password: %v", err)
		}
	})
	t.Run("proxy refuses CONNECT to the port", func(t *testing.T) {
		p, err := proxy.Start(context.Background(), proxy.Options{Dir: t.TempDir(), ConnectPorts: []int{443}})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		err = roundTrip(t, srv, Connection{ConnectionString: frontConnectionString(srv, f.wss),
			Transport: Transport{WebSockets: true, CAFile: f.caFile, Proxy: Proxy{URL: p.URL()}}})
		if err == nil || !strings.Contains(err.Error(), "refused CONNECT to "+f.wss+" with HTTP 403") {
			t.Fatalf("got %v, want the proxy's 403", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		err := roundTrip(t, srv, Connection{ConnectionString: frontConnectionString(srv, f.wss),
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
