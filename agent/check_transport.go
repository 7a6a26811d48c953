package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/agent"
	"wbagent/internal/bus"
	"wbagent/internal/config"
)

// hopTimeout bounds each hop of the transport checks.
const hopTimeout = 15 * time.Second

// serviceBusScope is the scope the SDK asks Entra ID tokens for.
const serviceBusScope = "https://servicebus.azure.net//.default"

// busChecks tests the hops to the namespace, then Listen on the request
// queue and Send on the reply queues.
func busChecks(ctx context.Context, cfg *config.Config, getenv func(string) string) []checkRow {
	rows, ok := transportChecks(ctx, cfg, getenv)
	if !ok {
		return rows
	}
	rows = append(rows, queueChecks(ctx, cfg, getenv)...)
	if rows[len(rows)-1].OK {
		rows = append(rows, sendChecks(ctx, cfg, getenv)...)
	}
	return rows
}

// transportChecks walks the hops to the namespace one at a time, as the
// agent takes them, so a failure names the hop: the proxy and its answer
// to CONNECT, TLS to the namespace, then the Entra ID token. ok is false
// when a hop failed: the queue checks after it would only repeat the
// failure less clearly.
func transportChecks(ctx context.Context, cfg *config.Config, getenv func(string) string) (rows []checkRow, ok bool) {
	sb := cfg.ServiceBus
	t, err := agent.BusTransport(sb, getenv)
	if t.Proxy.Password != nil {
		defer t.Proxy.Password.Destroy()
	}
	if err != nil {
		return []checkRow{{Name: "service bus transport", Detail: err.Error(), Fix: "make the proxy password available to the service"}}, false
	}
	host, emulator, err := checkNamespace(cfg, getenv)
	if err != nil {
		return []checkRow{{Name: "service bus endpoint", Detail: err.Error(), Fix: "check servicebus.connectionString or servicebus.namespace"}}, false
	}
	if err := (bus.Endpoint{Host: host, Emulator: emulator}).Allowed(t); err != nil {
		return []checkRow{{Name: "service bus TLS", Detail: err.Error(),
			Fix: "use the namespace's connection string from the Azure portal (no UseDevelopmentEmulator); devbus's TLS listener gives one too"}}, false
	}
	if emulator {
		return []checkRow{{Name: "service bus TLS", OK: true, Warn: true,
			Detail: "UseDevelopmentEmulator=true: plain AMQP to " + host + " on this machine, no TLS",
			Fix:    "for a real namespace, remove UseDevelopmentEmulator from the connection string"}}, true
	}
	target := t.Dial(host)
	conn, proxyRow, ok := dialHop(ctx, t, sb, target)
	if proxyRow != nil {
		rows = append(rows, *proxyRow)
	}
	if !ok {
		return rows, false
	}
	row, ok := tlsHop(ctx, conn, t, target)
	rows = append(rows, row)
	if !ok {
		return rows, false
	}
	if sb.ConnectionString == nil {
		row, ok := tokenHop(ctx, cfg, t, getenv)
		rows = append(rows, row)
		if !ok {
			return rows, false
		}
	}
	return rows, true
}

// checkNamespace is the namespace's host[:port] and whether the
// connection string asks for the emulator.
func checkNamespace(cfg *config.Config, getenv func(string) string) (string, bool, error) {
	sb := cfg.ServiceBus
	if sb.ConnectionString == nil {
		return sb.Namespace, false, nil
	}
	cs, err := sb.ConnectionString.Resolve(getenv)
	if err != nil {
		return "", false, fmt.Errorf("servicebus.connectionString: %w", err)
	}
	defer cs.Destroy()
	ep, err := bus.ParseEndpoint(cs.Reveal())
	if err != nil {
		return "", false, fmt.Errorf("servicebus.connectionString: %w", err)
	}
	return ep.Host, ep.Emulator, nil
}

// dialHop opens TCP to target, through the proxy when one applies. The
// proxy row is nil without a proxy.
func dialHop(ctx context.Context, t bus.Transport, sb config.ServiceBus, target string) (net.Conn, *checkRow, bool) {
	d := &net.Dialer{Timeout: hopTimeout}
	var proxy *url.URL
	if t.WebSockets {
		var err error
		if proxy, err = t.ProxyFor(&url.URL{Scheme: "https", Host: target}); err != nil {
			return nil, &checkRow{Name: "service bus proxy", Detail: "the proxy from the environment is not valid: " + err.Error(),
				Fix: "fix HTTPS_PROXY in the service's environment, or set servicebus.proxy"}, false
		}
	}
	if proxy == nil {
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			port := "5671 (AMQP over TLS)"
			if t.WebSockets {
				port = "443 (WebSockets)"
			}
			return nil, &checkRow{Name: "service bus connection", Detail: fmt.Sprintf("connect to %s: %v", target, err),
				Fix: fmt.Sprintf("check DNS and that outbound TCP %s to the namespace is open; behind a proxy set servicebus.transport: websockets and servicebus.proxy", port)}, false
		}
		var row *checkRow
		if !t.WebSockets && os.Getenv("HTTPS_PROXY")+os.Getenv("https_proxy") != "" && !t.Proxy.None {
			row = &checkRow{Name: "service bus proxy", OK: true, Warn: true,
				Detail: "HTTPS_PROXY is set, but transport amqp connects directly on TCP 5671 (a proxy cannot carry it)",
				Fix:    "if only the proxy leads out, set servicebus.transport: websockets"}
		}
		return c, row, true
	}
	name := "service bus proxy " + proxy.Host
	source := "servicebus.proxy"
	if t.Proxy.URL == nil {
		source = "HTTPS_PROXY"
	}
	c, err := d.DialContext(ctx, "tcp", proxy.Host)
	if err != nil {
		return nil, &checkRow{Name: name, Detail: fmt.Sprintf("the proxy is unreachable: %v", err),
			Fix: fmt.Sprintf("check %s (host and port) and that the proxy is running and reachable from this server", source)}, false
	}
	_ = c.SetDeadline(time.Now().Add(hopTimeout))
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if tr, err := t.HTTPTransport(); err == nil {
		for k, v := range tr.ProxyConnectHeader {
			req.Header[k] = v
		}
	}
	if err := req.Write(c); err != nil {
		c.Close()
		return nil, &checkRow{Name: name, Detail: fmt.Sprintf("send CONNECT %s: %v", target, err), Fix: "check that " + proxy.Host + " is an HTTP proxy"}, false
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		c.Close()
		return nil, &checkRow{Name: name, Detail: fmt.Sprintf("no HTTP answer to CONNECT %s: %v", target, err),
			Fix: fmt.Sprintf("check that %s in %s is an HTTP proxy (not a SOCKS or TLS port)", proxy.Host, source)}, false
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		c.Close()
		pe := &bus.ProxyError{Proxy: proxy.Host, Target: target, Status: resp.Status, Code: resp.StatusCode}
		fix := fmt.Sprintf("ask the proxy's admins to allow CONNECT to %s for this server", target)
		if pe.AuthRequired() {
			fix = "the proxy wants credentials: set servicebus.proxyAuth (user, password as {env: NAME} or {file: PATH}), or check them"
			if sb.ProxyAuth == nil {
				fix = "the proxy wants credentials: set servicebus.proxyAuth (user, and password as {env: NAME} or {file: PATH})"
			}
		}
		return nil, &checkRow{Name: name, Detail: fmt.Sprintf("CONNECT %s refused: HTTP %s", target, resp.Status), Fix: fix}, false
	}
	_ = c.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		c.Close()
		return nil, &checkRow{Name: name, Detail: "the proxy sent data before the tunnel was used", Fix: "check that " + proxy.Host + " is an HTTP proxy"}, false
	}
	return c, &checkRow{Name: name, OK: true, Detail: fmt.Sprintf("CONNECT %s allowed (HTTP %s)", target, resp.Status)}, true
}

// tlsHop runs the TLS handshake the agent would, and reports the
// namespace's certificate, or why it is not trusted.
func tlsHop(ctx context.Context, c net.Conn, t bus.Transport, target string) (checkRow, bool) {
	defer c.Close()
	name := "service bus TLS " + target
	cfg, err := t.TLSConfig()
	if err != nil {
		return checkRow{Name: name, Detail: err.Error(), Fix: "point servicebus.tls.caFile at a readable PEM file with the CA certificate"}, false
	}
	cfg.ServerName = bus.HostOnly(target)
	tc := tls.Client(c, cfg)
	hctx, cancel := context.WithTimeout(ctx, hopTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		var ve *tls.CertificateVerificationError
		if errors.As(err, &ve) && len(ve.UnverifiedCertificates) > 0 {
			return checkRow{Name: name, Detail: fmt.Sprintf("%v; the server presented %s", ve.Err, describeCert(ve.UnverifiedCertificates[0])),
				Fix: tlsFix(ve.Err, t)}, false
		}
		return checkRow{Name: name, Detail: "TLS handshake failed: " + err.Error(),
			Fix: "check that the endpoint serves TLS on this port (TLS 1.2 or later); a proxy that inspects TLS needs its CA in servicebus.tls.caFile"}, false
	}
	st := tc.ConnectionState()
	return checkRow{Name: name, OK: true, Detail: fmt.Sprintf("%s, %s", tls.VersionName(st.Version), describeCert(st.PeerCertificates[0]))}, true
}

func describeCert(c *x509.Certificate) string {
	names := c.DNSNames
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	return fmt.Sprintf("certificate %q for %s issued by %q, valid %s to %s", c.Subject.CommonName, strings.Join(names, ", "),
		c.Issuer.CommonName, c.NotBefore.UTC().Format("2006-01-02"), c.NotAfter.UTC().Format("2006-01-02"))
}

func tlsFix(err error, t bus.Transport) string {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &ua) && t.CAFile == "":
		return "the issuer is not trusted: put its CA certificate (PEM) in servicebus.tls.caFile, or in the system trust store; a TLS-inspecting proxy's CA belongs there too"
	case errors.As(err, &ua):
		return "the issuer is not in servicebus.tls.caFile (" + t.CAFile + ") nor the system trust store: add the right CA certificate"
	case errors.As(err, &hn):
		return "the certificate does not name the namespace: check the endpoint's host name"
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		return "the certificate is expired or not yet valid: check this server's clock, then the certificate"
	}
	return "the certificate could not be verified: check servicebus.tls.caFile and the endpoint"
}

var aadsts = regexp.MustCompile(`AADSTS\d+`)

// tokenHop asks Entra ID for a Service Bus token with the configured
// credential.
func tokenHop(ctx context.Context, cfg *config.Config, t bus.Transport, getenv func(string) string) (checkRow, bool) {
	c := cfg.ServiceBus.Credential
	if c == nil {
		c = &config.Credential{Type: bus.CredentialDefault}
	}
	who := "credential " + c.Type
	if c.TenantID != "" {
		who += ", tenant " + c.TenantID
	}
	if c.ClientID != "" {
		who += ", client " + c.ClientID
	}
	name := "service bus token"
	if c.Type == bus.CredentialClientCertificate {
		if row, bad := certificateExpiry(c, getenv, name, who); bad {
			return row, false
		}
	}
	cred, err := agent.BusCredential(c, t, getenv)
	if err != nil {
		return checkRow{Name: name, Detail: who + ": " + err.Error(), Fix: "check servicebus.credential"}, false
	}
	tctx, cancel := context.WithTimeout(ctx, hopTimeout)
	defer cancel()
	tok, err := cred.GetToken(tctx, policy.TokenRequestOptions{Scopes: []string{serviceBusScope}})
	if err != nil {
		return checkRow{Name: name, Detail: who + ": " + tokenError(err), Fix: tokenFix(err, c)}, false
	}
	return checkRow{Name: name, OK: true, Detail: fmt.Sprintf("%s: token issued, valid until %s", who, tok.ExpiresOn.UTC().Format(time.RFC3339))}, true
}

// tokenError is the credential's failure in one line: Entra ID's code and
// message when there is one, never the response's headers or body.
func tokenError(err error) string {
	msg := err.Error()
	if code := aadsts.FindString(msg); code != "" {
		i := strings.Index(msg, code)
		line, _, _ := strings.Cut(msg[i:], "\n")
		line, _, _ = strings.Cut(line, " Trace ID:")
		return strings.TrimRight(strings.TrimSpace(line), `",`)
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		return fmt.Sprintf("the authority answered HTTP %s", af.RawResponse.Status)
	}
	line, _, _ := strings.Cut(msg, "\n")
	return line
}

func tokenFix(err error, c *config.Credential) string {
	switch aadsts.FindString(err.Error()) {
	case "AADSTS7000215", "AADSTS7000222":
		return "the client secret is wrong or expired: make a new one for the app registration and update servicebus.credential.clientSecret"
	case "AADSTS700027", "AADSTS700024":
		return "the certificate assertion was refused: upload this certificate to the app registration, renew it if expired, and check this server's clock"
	case "AADSTS700016":
		return "no application with this client id in the tenant: check servicebus.credential.clientId and tenantId"
	case "AADSTS90002", "AADSTS900023":
		return "the tenant is not known: check servicebus.credential.tenantId"
	}
	if strings.Contains(err.Error(), "certificate") || strings.Contains(err.Error(), "tls:") {
		return "the authority's TLS is not trusted: put its CA in servicebus.tls.caFile (a TLS-inspecting proxy's CA belongs there too)"
	}
	if c.AuthorityHost != "" {
		return "check servicebus.credential.authorityHost and that this server reaches it (through the proxy when one is set)"
	}
	return "check servicebus.credential and that this server reaches login.microsoftonline.com on TCP 443"
}

// certificateExpiry fails the token row early for an expired client
// certificate: the authority would only say the assertion is invalid.
func certificateExpiry(c *config.Credential, getenv func(string) string, name, who string) (checkRow, bool) {
	data, err := os.ReadFile(c.CertificateFile)
	if err != nil {
		return checkRow{Name: name, Detail: who + ": " + err.Error(), Fix: "make servicebus.credential.certificateFile readable by the service"}, true
	}
	defer clear(data)
	var pw []byte
	if c.CertificatePassword != nil {
		s, err := c.CertificatePassword.Resolve(getenv)
		if err != nil {
			return checkRow{Name: name, Detail: who + ": certificatePassword: " + err.Error(), Fix: "make the certificate password available to the service"}, true
		}
		defer s.Destroy()
		pw = s.Bytes()
	}
	certs, _, err := azidentity.ParseCertificates(data, pw)
	if err != nil {
		return checkRow{Name: name, Detail: who + ": " + c.CertificateFile + ": " + err.Error(),
			Fix: "certificateFile must hold the certificate and its private key (PEM or PKCS#12); set certificatePassword for an encrypted file"}, true
	}
	now := time.Now()
	if leaf := certs[0]; now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
		return checkRow{Name: name, Detail: fmt.Sprintf("%s: the client certificate %q expired on %s (valid from %s)", who, leaf.Subject.CommonName,
			leaf.NotAfter.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339)),
			Fix: "issue a new certificate, upload it to the app registration and point servicebus.credential.certificateFile at it"}, true
	}
	return checkRow{}, false
}

// sendChecks proves the Send right on each of servicebus.replyQueues by
// opening a sender link (NewMessageBatch attaches it and learns the size
// limit); nothing is sent.
func sendChecks(ctx context.Context, cfg *config.Config, getenv func(string) string) []checkRow {
	if len(cfg.ServiceBus.ReplyQueues) == 0 {
		return nil
	}
	conn, err := agent.BusConnection(cfg, getenv)
	for _, s := range conn.Secrets() {
		defer s.Destroy()
	}
	if err != nil {
		return []checkRow{{Name: "service bus reply queues", Detail: err.Error(), Fix: "make the connection string or credential available to the service"}}
	}
	conn.Retry = azservicebus.RetryOptions{MaxRetries: 0, RetryDelay: 100 * time.Millisecond, MaxRetryDelay: time.Second}
	client, err := bus.NewClient(conn)
	if err != nil {
		return []checkRow{{Name: "service bus reply queues", Detail: err.Error(), Fix: "check servicebus.connectionString or servicebus.namespace"}}
	}
	defer client.Close(context.Background())
	var rows []checkRow
	for _, q := range cfg.ServiceBus.ReplyQueues {
		name := "service bus reply queue " + q
		s, err := client.NewSender(q, nil)
		if err == nil {
			sctx, cancel := context.WithTimeout(ctx, hopTimeout)
			_, err = s.NewMessageBatch(sctx, nil)
			cancel()
			_ = s.Close(context.Background())
		}
		if err != nil {
			rows = append(rows, checkRow{Name: name, Detail: "Send refused: " + err.Error(), Fix: sendFix(err)})
			continue
		}
		rows = append(rows, checkRow{Name: name, OK: true, Detail: "Send allowed (sender link attached, nothing sent)"})
	}
	return rows
}

func sendFix(err error) string {
	var sbErr *azservicebus.Error
	if errors.As(err, &sbErr) {
		switch sbErr.Code {
		case azservicebus.CodeUnauthorizedAccess:
			return "grant Send on the reply queue: a SAS rule with Send, or the role Azure Service Bus Data Sender for the Entra ID identity"
		case azservicebus.CodeNotFound:
			return "the reply queue does not exist: create it, or fix servicebus.replyQueues"
		}
	}
	return "check the reply queue's name and the Send right on it"
}
