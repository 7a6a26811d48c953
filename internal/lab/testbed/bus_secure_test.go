package testbed

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/coder/websocket"

	"wbagent/internal/devbus"
	"wbagent/internal/secret"
)

// `wbagent devbus` as a process with its TLS and WebSocket listeners and
// the Entra ID stand-in: an app's token works over TLS, and after a
// restart (same ports, same CA) the WebSocket listener serves the message.
func TestBusProcessSecureListeners(t *testing.T) {
	ctx, dir, bin := agentBed(t, "builds and runs wbagent", 3*time.Minute)
	certFile, expiredFile := filepath.Join(dir, "app-cert.pem"), filepath.Join(dir, "app-expired.pem")
	cert, err := EntraClientCert(certFile, "app-cert", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := EntraClientCert(expiredFile, "app-expired", time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, err := StartBus(ctx, BusOptions{Binary: bin, Dir: dir, State: true, TLS: true, WebSockets: true,
		Queues: []devbus.QueueConfig{{Name: "q"}},
		Entra: &devbus.EntraOptions{Tenant: "tenant-1", Clients: []devbus.EntraClient{
			{ID: "app", Secret: secret.FromString("app-secret"), Listen: true, Send: true},
			{ID: "app-cert", Certificate: cert, Listen: true},
			{ID: "app-expired", Certificate: expired, Listen: true}}}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, cs := range []*secret.Secret{b.TLSConnectionString(), b.WebSocketConnectionString()} {
		if cs == nil || !strings.HasPrefix(cs.Reveal(), "Endpoint=sb://localhost:") || strings.Contains(cs.Reveal(), "UseDevelopmentEmulator") {
			t.Fatalf("secure connection string %v", cs)
		}
	}
	pool, err := b.CertPool()
	if err != nil || pool == nil || b.CAFile() == "" {
		t.Fatalf("CA: %v %q", err, b.CAFile())
	}
	// The certificate files as an admin would point the agent at them:
	// the valid one gets a token, the expired one AADSTS700027.
	for file, want := range map[string]string{certFile: "", expiredFile: "AADSTS700027"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		certs, key, err := azidentity.ParseCertificates(raw, nil)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(filepath.Base(file), ".pem")
		cc, err := azidentity.NewClientCertificateCredential("tenant-1", id, certs, key, &azidentity.ClientCertificateCredentialOptions{
			ClientOptions: StandInClientOptions(b.AuthorityHost(), pool), DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		_, err = cc.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{devbus.ServiceBusAudience + "//.default"}})
		if (want == "" && err != nil) || (want != "" && (err == nil || !strings.Contains(err.Error(), want))) {
			t.Fatalf("%s: %v, want %q", id, err, want)
		}
	}
	host := connHost(b.TLSConnectionString().Reveal())
	c, err := EntraSecretClient(b.AuthorityHost(), host, pool, "tenant-1", "app", "app-secret")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := c.NewSender("q", nil)
	if err := s.SendMessage(ctx, &azservicebus.Message{Body: []byte("over TLS with Entra ID")}, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
	_ = c.Close(ctx)
	before := b.WebSocketConnectionString().Reveal()
	if err := b.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if b.WebSocketConnectionString().Reveal() != before {
		t.Fatal("the WebSocket listener moved across the restart")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	wc, err := azservicebus.NewClientFromConnectionString(before, &azservicebus.ClientOptions{
		NewWebSocketConn: func(ctx context.Context, args azservicebus.NewWebSocketConnArgs) (net.Conn, error) {
			ws, _, err := websocket.Dial(ctx, args.Host, &websocket.DialOptions{HTTPClient: hc, Subprotocols: []string{devbus.WebSocketSubprotocol}})
			if err != nil {
				return nil, err
			}
			return websocket.NetConn(context.Background(), ws, websocket.MessageBinary), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer wc.Close(ctx)
	receiveBody(ctx, t, wc, "q", "over TLS with Entra ID", "receive over WebSockets after the restart")
}
