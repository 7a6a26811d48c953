package config

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Transport values of servicebus.transport, and the proxy value that
// turns the environment's proxy off.
const (
	TransportAMQP       = "amqp"
	TransportWebSockets = "websockets"
	ProxyNone           = "none"
	DefaultWatchdog     = 2 * time.Minute
	// minWatchdog keeps a typo such as "2s" from rebuilding the connection
	// every few seconds on a healthy but idle bus.
	minWatchdog = time.Second
)

// completeTransport checks servicebus.transport, tls, proxy, proxyAuth and
// watchdog.
func (c *Config) completeTransport(k *checker) {
	sb := &c.ServiceBus
	switch sb.Transport {
	case "":
		sb.Transport = TransportAMQP
	case TransportAMQP, TransportWebSockets:
	default:
		k.fail("servicebus.transport", "%q is not known: use amqp (TCP 5671) or websockets (TCP 443, works through an HTTP proxy)", sb.Transport)
	}
	sb.TLS.CAFile = c.abs(sb.TLS.CAFile)
	switch p := sb.Proxy; {
	case p == "", p == ProxyNone:
	default:
		u, err := url.Parse(p)
		switch {
		case err != nil || u.Host == "" || !strings.Contains(p, "://"):
			k.fail("servicebus.proxy", "%q is not a proxy URL: write it like http://proxy.corp.example:8080, or none", redactURL(p))
		case u.Scheme != "http":
			k.fail("servicebus.proxy", "scheme %q is not supported: use an http:// proxy (the agent tunnels TLS through it with CONNECT)", u.Scheme)
		case u.User != nil:
			k.fail("servicebus.proxy", "the URL holds a user name or password: move them to servicebus.proxyAuth (user, and password as {env: NAME} or {file: PATH})")
		case u.Path != "" && u.Path != "/" || u.RawQuery != "":
			k.fail("servicebus.proxy", "%q has a path or query: give only http://HOST:PORT", redactURL(p))
		}
		if sb.Transport == TransportAMQP {
			k.fail("servicebus.proxy", "an HTTP proxy cannot carry transport amqp (TCP 5671): set servicebus.transport: websockets, or proxy: none")
		}
	}
	if a := sb.ProxyAuth; a != nil {
		if sb.Proxy == "" || sb.Proxy == ProxyNone {
			k.fail("servicebus.proxyAuth", "only used with servicebus.proxy: http://HOST:PORT")
		}
		if a.User == "" || a.Password == nil {
			k.fail("servicebus.proxyAuth", "needs user and password ({env: NAME} or {file: PATH})")
		}
		c.secretRef(k, "servicebus.proxyAuth.password", a.Password)
	}
	for i, q := range sb.ReplyQueues {
		if q == "" || strings.ContainsAny(q, "/$") {
			k.fail(fmt.Sprintf("servicebus.replyQueues[%d]", i), "%q is not a queue name", q)
		}
	}
	switch {
	case sb.Watchdog == 0:
		sb.Watchdog = Duration(DefaultWatchdog)
	case sb.Watchdog.D() < minWatchdog:
		k.fail("servicebus.watchdog", "%s is too short: use 1s or more (default 2m)", sb.Watchdog.D())
	}
}

// completeCredential checks the credential kinds that need files.
func (c *Config) completeCredential(k *checker, cr *Credential) {
	switch cr.Type {
	case "clientCertificate":
		if cr.TenantID == "" || cr.ClientID == "" || cr.CertificateFile == "" {
			k.fail("servicebus.credential", "type clientCertificate needs tenantId, clientId and certificateFile (PEM with the private key, or PKCS#12)")
		}
		cr.CertificateFile = c.abs(cr.CertificateFile)
		c.secretRef(k, "servicebus.credential.certificatePassword", cr.CertificatePassword)
	case "workloadIdentity":
		cr.TokenFile = c.abs(cr.TokenFile)
	}
}

// completeAuthority checks credential.authorityHost.
func (c *Config) completeAuthority(k *checker, cr *Credential) {
	if cr.AuthorityHost == "" {
		return
	}
	u, err := url.Parse(cr.AuthorityHost)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		k.fail("servicebus.credential.authorityHost", "%q is not an https:// URL such as https://login.microsoftonline.com/", cr.AuthorityHost)
		return
	}
	if !strings.HasSuffix(cr.AuthorityHost, "/") {
		cr.AuthorityHost += "/"
	}
}

// redactURL drops any user information from a URL-like text for messages.
func redactURL(s string) string {
	if i := strings.LastIndex(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "…" + s[i:]
		}
		return "…" + s[i:]
	}
	return s
}
