package devbus

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/lab/testkit"
	"wbagent/internal/secret"
)

const testTenant = "7f3c1e52-devbus-tenant"

// clientCert is a self-signed RSA certificate, as an admin creates for
// an app registration, valid from notBefore to notAfter.
func clientCert(t *testing.T, notBefore, notAfter time.Time) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "wbagent"},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// entraServer starts devbus with TLS, WebSockets and the stand-in.
func entraServer(t *testing.T, lifetime time.Duration, clients ...EntraClient) *Server {
	t.Helper()
	return startServerWith(t, Options{Queues: []QueueConfig{{Name: "q"}}, TLSAddr: "127.0.0.1:0", WSAddr: "127.0.0.1:0",
		Entra: &EntraOptions{Tenant: testTenant, Clients: clients, TokenLifetime: lifetime}})
}

// credOptions point azidentity at the stand-in, as the agent's
// credential.authorityHost does: the authority host, instance discovery
// off, the devbus CA trusted.
func credOptions(srv *Server) azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: srv.AuthorityHost()},
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool(), MinVersion: tls.VersionTLS12}}},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func secretCred(t *testing.T, srv *Server, clientID, sec string) azcore.TokenCredential {
	t.Helper()
	c, err := azidentity.NewClientSecretCredential(testTenant, clientID, sec, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: credOptions(srv), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func certCred(t *testing.T, srv *Server, clientID string, cert *x509.Certificate, key *rsa.PrivateKey) azcore.TokenCredential {
	t.Helper()
	c, err := azidentity.NewClientCertificateCredential(testTenant, clientID, []*x509.Certificate{cert}, key,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: credOptions(srv), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// entraClientTLS is a Service Bus client on the TLS listener with an
// Entra ID credential; ws puts it on the WebSocket listener instead.
func entraClientTLS(t *testing.T, srv *Server, cred azcore.TokenCredential, ws bool) *azservicebus.Client {
	t.Helper()
	opts := &azservicebus.ClientOptions{RetryOptions: fastRetry,
		TLSConfig: &tls.Config{RootCAs: srv.CertPool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}}
	var addr string
	if ws {
		opts.TLSConfig, opts.NewWebSocketConn = nil, wsDialer(srv.CertPool())
		addr = "localhost:" + portOf(srv.wsLn)
	} else {
		addr = "localhost:" + portOf(srv.tlsLn)
	}
	c, err := azservicebus.NewClient(addr, cred, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func roundTrip(t *testing.T, c *azservicebus.Client, body string) {
	t.Helper()
	send(t, c, "q", &azservicebus.Message{Body: []byte(body)})
	r, err := c.NewReceiverForQueue("q", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(context.Background())
	msgs, err := r.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != body {
		t.Fatalf("receive: %d messages, %v", len(msgs), err)
	}
	if err := r.CompleteMessage(testkit.Context(t, 10*time.Second), msgs[0], nil); err != nil {
		t.Fatal(err)
	}
}

// TestEntraClientSecret: azidentity's ClientSecretCredential gets a token
// from the stand-in, and the SDK sends and receives with it over TLS.
func TestEntraClientSecret(t *testing.T) {
	srv := entraServer(t, 0, EntraClient{ID: "app-secret", Secret: secret.FromString("s3cr3t-value"), Listen: true, Send: true})
	roundTrip(t, entraClientTLS(t, srv, secretCred(t, srv, "app-secret", "s3cr3t-value"), false), "with a client secret")
	if n := srv.EntraTokensIssued("app-secret"); n < 1 {
		t.Fatalf("%d tokens issued", n)
	}
}

// TestEntraClientCertificate: ClientCertificateCredential signs a client
// assertion the stand-in verifies with the registered certificate; the
// SDK works with its token over WebSockets.
func TestEntraClientCertificate(t *testing.T) {
	cert, key := clientCert(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	srv := entraServer(t, 0, EntraClient{ID: "app-cert", Certificate: cert, Listen: true, Send: true})
	roundTrip(t, entraClientTLS(t, srv, certCred(t, srv, "app-cert", cert, key), true), "with a certificate")
}

// TestEntraTokenErrors: each failure answers with the AADSTS code Entra
// ID uses, which azidentity passes on.
func TestEntraTokenErrors(t *testing.T) {
	good, goodKey := clientCert(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	expired, expiredKey := clientCert(t, time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour))
	other, otherKey := clientCert(t, time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour))
	srv := entraServer(t, 0,
		EntraClient{ID: "app-secret", Secret: secret.FromString("right"), Listen: true},
		EntraClient{ID: "app-cert", Certificate: good, Listen: true},
		EntraClient{ID: "app-expired", Certificate: expired, Listen: true})
	cases := []struct {
		name string
		cred azcore.TokenCredential
		want string
	}{
		{"wrong secret", secretCred(t, srv, "app-secret", "wrong"), "AADSTS7000215"},
		{"unknown client", secretCred(t, srv, "app-nobody", "x"), "AADSTS700016"},
		{"expired certificate", certCred(t, srv, "app-expired", expired, expiredKey), "AADSTS700027"},
		{"another certificate", certCred(t, srv, "app-cert", other, otherKey), "AADSTS700027"},
		{"certificate for a secret client", certCred(t, srv, "app-secret", good, goodKey), "AADSTS700027"},
	}
	for _, c := range cases {
		_, err := c.cred.GetToken(testkit.Context(t, 20*time.Second), policy.TokenRequestOptions{Scopes: []string{ServiceBusAudience + "//.default"}})
		var afe *azidentity.AuthenticationFailedError
		if !errors.As(err, &afe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an authentication failure with %s", c.name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "right") {
			t.Errorf("%s: the error shows the secret", c.name)
		}
	}
	// Another tenant is not found.
	cred, _ := azidentity.NewClientSecretCredential("another-tenant", "app-secret", "right", &azidentity.ClientSecretCredentialOptions{
		ClientOptions: credOptions(srv), DisableInstanceDiscovery: true})
	if _, err := cred.GetToken(testkit.Context(t, 20*time.Second), policy.TokenRequestOptions{Scopes: []string{ServiceBusAudience + "//.default"}}); err == nil || !strings.Contains(err.Error(), "AADSTS90002") {
		t.Errorf("another tenant: %v, want AADSTS90002", err)
	}
}

// TestEntraRights: a client registered with Send only sends, and its
// receiver is refused with amqp:unauthorized-access naming Listen.
func TestEntraRights(t *testing.T) {
	srv := entraServer(t, 0, EntraClient{ID: "app-sender", Secret: secret.FromString("pw"), Send: true})
	c := entraClientTLS(t, srv, secretCred(t, srv, "app-sender", "pw"), false)
	send(t, c, "q", &azservicebus.Message{Body: []byte("x")})
	r, err := c.NewReceiverForQueue("q", nil)
	if err == nil {
		_, err = r.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "unauthorized-access") || !strings.Contains(err.Error(), "'Listen' claim(s) are required") {
		t.Fatalf("receive without Listen: %v, want unauthorized-access naming Listen", err)
	}
	if d := srv.Depth("q"); d != 1 {
		t.Fatalf("depth %d, want the message kept", d)
	}
}

// TestEntraValidateJWT: put-token accepts only the stand-in's own,
// unexpired Service Bus tokens with the claims it issues.
func TestEntraValidateJWT(t *testing.T) {
	srv := entraServer(t, time.Hour, EntraClient{ID: "app", Secret: secret.FromString("pw"), Listen: true})
	e := srv.entra
	base := "https://localhost:" + portOf(srv.tlsLn)
	now := time.Now()
	good, err := e.issue(e.clients["app"], base, now)
	if err != nil {
		t.Fatal(err)
	}
	aud := "amqps://localhost:" + portOf(srv.tlsLn) + "/q"
	path, exp, r, err := e.validateJWT(good, aud, now)
	if err != nil || path != "q" || r != rightListen || !exp.After(now.Add(59*time.Minute)) {
		t.Fatalf("good token: %q %v %v %v", path, exp, r, err)
	}
	if _, _, _, err := e.validateJWT(good, aud, now.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired: %v", err)
	}
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	sign := func(key *rsa.PrivateKey, mutate func(map[string]any)) string {
		claims := map[string]any{"aud": ServiceBusAudience, "iss": e.issuer(base), "tid": testTenant, "iat": now.Unix(),
			"nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "appid": "app", "oid": e.clients["app"].oid, "roles": []string{"Listen", "Send"}}
		mutate(claims)
		tok, err := signJWT(key, map[string]any{"alg": "RS256", "typ": "JWT", "kid": e.kid}, claims)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	bad := map[string]string{
		"another signer":  sign(otherKey, func(map[string]any) {}),
		"other audience":  sign(e.key, func(c map[string]any) { c["aud"] = "https://storage.azure.com" }),
		"other issuer":    sign(e.key, func(c map[string]any) { c["iss"] = "https://login.microsoftonline.com/" + testTenant + "/v2.0" }),
		"other tenant":    sign(e.key, func(c map[string]any) { c["tid"] = "someone-else" }),
		"unknown app":     sign(e.key, func(c map[string]any) { c["appid"] = "stranger" }),
		"wrong object id": sign(e.key, func(c map[string]any) { c["oid"] = "00000000-0000-0000-0000-000000000000" }),
		"no expiry":       sign(e.key, func(c map[string]any) { delete(c, "exp") }),
		"not a JWT":       "SharedAccessSignature sr=x",
		"tampered":        good[:len(good)-4] + "AAAA",
	}
	for name, tok := range bad {
		if _, _, _, err := e.validateJWT(tok, aud, now); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), tok) {
			t.Errorf("%s: the error holds the token", name)
		}
	}
}

// TestEntraTokenExpiryDetaches: when the only token of a link expires
// (broker time moved past it) the link is detached with
// amqp:unauthorized-access naming the expired token, which the receiver
// reports.
func TestEntraTokenExpiryDetaches(t *testing.T) {
	clock := newFakeClock()
	srv := startServerWith(t, Options{Queues: []QueueConfig{{Name: "q"}}, TLSAddr: "127.0.0.1:0", Clock: clock,
		Entra: &EntraOptions{Tenant: testTenant, TokenLifetime: 10 * time.Minute,
			Clients: []EntraClient{{ID: "app", Secret: secret.FromString("pw"), Listen: true, Send: true}}}})
	c := entraClientTLS(t, srv, secretCred(t, srv, "app", "pw"), false)
	r, err := c.NewReceiverForQueue("q", &azservicebus.ReceiverOptions{ReceiveMode: azservicebus.ReceiveModeReceiveAndDelete})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.PeekMessages(testkit.Context(t, 20*time.Second), 1, nil); err != nil {
		t.Fatalf("peek with a fresh token: %v", err)
	}
	links := func() int {
		n := 0
		for _, ci := range srv.Connections() {
			for _, l := range ci.Links {
				if l == "q" {
					n++
				}
			}
		}
		return n
	}
	if links() == 0 {
		t.Fatal("no receiver link attached")
	}
	clock.Advance(11 * time.Minute)
	deadline := time.Now().Add(20 * time.Second)
	for links() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the receiver link is still attached after its token expired: %+v", srv.Connections())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, err = r.ReceiveMessages(testkit.Context(t, 20*time.Second), 1, nil)
	if err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("receive after expiry: %v, want a refusal naming the expired token", err)
	}
}

// staticCred hands the SDK a fixed token, as a credential from another
// tenant (or a forger) would.
type staticCred string

func (c staticCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(c), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// TestEntraForeignTokenRefused: put-token of a JWT the stand-in did not
// sign is refused (401), and the SDK's send fails naming it.
func TestEntraForeignTokenRefused(t *testing.T) {
	srv := entraServer(t, 0, EntraClient{ID: "app", Secret: secret.FromString("pw"), Listen: true, Send: true})
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	forged, err := signJWT(otherKey, map[string]any{"alg": "RS256", "typ": "JWT", "kid": srv.entra.kid}, map[string]any{
		"aud": ServiceBusAudience, "iss": srv.AuthorityHost() + testTenant + "/v2.0", "tid": testTenant,
		"exp": time.Now().Add(time.Hour).Unix(), "appid": "app", "oid": srv.EntraObjectID("app"), "roles": []string{"Listen", "Send"}})
	if err != nil {
		t.Fatal(err)
	}
	c := entraClientTLS(t, srv, staticCred(forged), false)
	s, err := c.NewSender("q", nil)
	if err == nil {
		err = s.SendMessage(testkit.Context(t, 20*time.Second), &azservicebus.Message{Body: []byte("x")}, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "not signed by this namespace's Entra ID tenant") {
		t.Fatalf("send with a forged token: %v", err)
	}
	if d := srv.Depth("q"); d != 0 {
		t.Fatalf("depth %d: a forged token sent a message", d)
	}
}

// TestEntraOnWebSocketListenerOnly: without a TLS listener the stand-in
// is served by the WebSocket listener's HTTPS server, and without any
// secure listener it is refused at start.
func TestEntraOnWebSocketListenerOnly(t *testing.T) {
	srv := startServerWith(t, Options{Queues: []QueueConfig{{Name: "q"}}, WSAddr: "127.0.0.1:0",
		Entra: &EntraOptions{Tenant: testTenant, Clients: []EntraClient{{ID: "app", Secret: secret.FromString("pw"), Listen: true, Send: true}}}})
	if want := "https://localhost:" + portOf(srv.wsLn) + "/"; srv.AuthorityHost() != want {
		t.Fatalf("authority host %q, want %q", srv.AuthorityHost(), want)
	}
	roundTrip(t, entraClientTLS(t, srv, secretCred(t, srv, "app", "pw"), true), "over WebSockets only")
	_, err := Start(context.Background(), Options{Queues: []QueueConfig{{Name: "q"}}, Entra: &EntraOptions{Tenant: testTenant}})
	if err == nil || !strings.Contains(err.Error(), "TLSAddr or WSAddr") {
		t.Fatalf("Entra without a TLS listener: %v", err)
	}
}

// TestEntraMetadata: the OpenID configuration names the stand-in as
// issuer and token endpoint, instance discovery answers, and the
// published key verifies the tokens it issues.
func TestEntraMetadata(t *testing.T) {
	srv := entraServer(t, 0, EntraClient{ID: "app", Secret: secret.FromString("pw"), Listen: true})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CertPool()}}}
	base := strings.TrimSuffix(srv.AuthorityHost(), "/")
	get := func(path string, into any) int {
		t.Helper()
		resp, err := hc.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode
	}
	var oidc map[string]any
	if get("/"+testTenant+"/v2.0/.well-known/openid-configuration", &oidc) != 200 ||
		oidc["issuer"] != base+"/"+testTenant+"/v2.0" || oidc["token_endpoint"] != base+"/"+testTenant+"/oauth2/v2.0/token" {
		t.Fatalf("openid configuration %v", oidc)
	}
	var inst map[string]any
	if get("/common/discovery/instance?api-version=1.1&authorization_endpoint="+url.QueryEscape(base+"/"+testTenant+"/oauth2/v2.0/authorize"), &inst) != 200 ||
		inst["tenant_discovery_endpoint"] != base+"/"+testTenant+"/v2.0/.well-known/openid-configuration" {
		t.Fatalf("instance discovery %v", inst)
	}
	var bad map[string]any
	if get("/another-tenant/v2.0/.well-known/openid-configuration", &bad) != 400 || !strings.HasPrefix(bad["error_description"].(string), "AADSTS90002:") {
		t.Fatalf("unknown tenant: %v", bad)
	}
	var jwks struct {
		Keys []struct{ Kid, N, E string } `json:"keys"`
	}
	if get("/"+testTenant+"/discovery/v2.0/keys", &jwks) != 200 || len(jwks.Keys) != 1 || jwks.Keys[0].Kid != srv.entra.kid {
		t.Fatalf("keys %+v", jwks)
	}
	n, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].N)
	e, _ := base64.RawURLEncoding.DecodeString(jwks.Keys[0].E)
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	tok, err := srv.entra.issue(srv.entra.clients["app"], base, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseJWT(tok)
	if err != nil || p.verify(pub) != nil {
		t.Fatalf("the published key does not verify an issued token: %v", err)
	}
	// A host the certificate does not name is not an authority.
	req, _ := http.NewRequest(http.MethodGet, base+"/"+testTenant+"/v2.0/.well-known/openid-configuration", nil)
	req.Host = "login.example.com:443"
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("foreign host: status %d", resp.StatusCode)
	}
}
