package bus

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/coder/websocket"
	"golang.org/x/net/http/httpproxy"

	"wbagent/internal/secret"
	"wbagent/internal/wsconn"
)

// WebSocketPath and WebSocketSubprotocol are what Service Bus serves AMQP
// over WebSockets at: wss://NAMESPACE/$servicebus/websocket, AMQPWSB10.
const (
	WebSocketPath        = "/$servicebus/websocket"
	WebSocketSubprotocol = "AMQPWSB10"
)

// Transport says how the agent reaches the namespace (and the Entra ID
// authority): which wire protocol, which CA, which proxy.
type Transport struct {
	// WebSockets carries AMQP over WebSockets over TLS (TCP 443 unless the
	// endpoint names a port) instead of AMQP over TLS on TCP 5671. Only
	// WebSockets can go through an HTTP proxy.
	WebSockets bool
	// CAFile is a PEM bundle trusted besides the system roots, for the
	// namespace and the authority.
	CAFile string
	// Proxy is the HTTP proxy for WebSockets and the authority.
	Proxy Proxy
}

// Proxy selects the HTTP proxy. The zero value takes HTTPS_PROXY and
// NO_PROXY from the environment.
type Proxy struct {
	// None connects directly, whatever the environment says.
	None bool
	// URL is an http:// proxy used for every host, loopback included.
	URL *url.URL
	// User and Password are sent as basic authentication to URL. The
	// caller destroys the password once the client is made.
	User     string
	Password *secret.Secret
}

// ProxyError is a proxy's refusal of the CONNECT tunnel to a host.
type ProxyError struct {
	Proxy  string // host:port of the proxy
	Target string // host:port the tunnel was for
	Status string // the proxy's HTTP status line, e.g. "403 Forbidden"
	Code   int
}

// Error names the proxy, the tunnel's target and the proxy's answer, and
// for 401/407 and 403 what to change, so the log and `check` say which
// hop failed and its fix.
func (e *ProxyError) Error() string {
	hint := ""
	switch {
	case e.AuthRequired():
		hint = ": the proxy wants credentials: set servicebus.proxyAuth, or check its user and password"
	case e.Code == http.StatusForbidden:
		_, port, _ := net.SplitHostPort(e.Target)
		hint = fmt.Sprintf(": allow CONNECT to %s (port %s) on the proxy", hostOnly(e.Target), port)
	}
	return fmt.Sprintf("proxy %s refused CONNECT to %s with HTTP %s%s", e.Proxy, e.Target, e.Status, hint)
}

// AuthRequired reports whether the proxy asked for (other) credentials.
// Some proxies, tinyproxy among them, answer 401 rather than 407.
func (e *ProxyError) AuthRequired() bool {
	return e.Code == http.StatusProxyAuthRequired || e.Code == http.StatusUnauthorized
}

// TLSConfig returns the TLS settings for the namespace and the authority:
// TLS 1.2 or later, the system roots plus CAFile, names always verified.
func (t Transport) TLSConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.CAFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(t.CAFile)
	if err != nil {
		return nil, fmt.Errorf("servicebus.tls.caFile: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("servicebus.tls.caFile: %s holds no PEM certificate", t.CAFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// ProxyFor returns the proxy for a request to target (an https or wss
// URL), or nil for a direct connection.
func (t Transport) ProxyFor(target *url.URL) (*url.URL, error) {
	switch {
	case t.Proxy.None:
		return nil, nil
	case t.Proxy.URL != nil:
		return t.Proxy.URL, nil
	}
	u := *target
	if u.Scheme == "wss" {
		u.Scheme = "https"
	}
	// Read now rather than once per process (as net/http does), so a
	// changed service environment applies to the next connection. As
	// with other Azure agents, loopback targets never take it.
	return httpproxy.FromEnvironment().ProxyFunc()(&u)
}

// HTTPTransport is the HTTP stack for WebSockets and the authority: the
// TLS settings, the proxy with its credentials, and a CONNECT refusal
// reported as a *ProxyError.
func (t Transport) HTTPTransport() (*http.Transport, error) {
	tc, err := t.TLSConfig()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 func(r *http.Request) (*url.URL, error) { return t.ProxyFor(r.URL) },
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   15 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		MaxIdleConns:          4,
		OnProxyConnectResponse: func(_ context.Context, proxy *url.URL, req *http.Request, resp *http.Response) error {
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			return &ProxyError{Proxy: proxy.Host, Target: req.Host, Status: resp.Status, Code: resp.StatusCode}
		},
	}
	if t.Proxy.URL != nil && t.Proxy.User != "" && !t.Proxy.Password.IsEmpty() {
		// A header rather than user info in the URL: the URL ends up in
		// error messages, the header never does.
		req := &http.Request{Header: http.Header{}}
		req.SetBasicAuth(t.Proxy.User, t.Proxy.Password.Reveal())
		tr.ProxyConnectHeader = http.Header{"Proxy-Authorization": req.Header["Authorization"]}
	}
	return tr, nil
}

// clientOptions applies the transport to the SDK's options; namespace is
// the endpoint's host[:port], for the TLS server name.
func (t Transport) clientOptions(opts *azservicebus.ClientOptions, namespace string) error {
	if !t.WebSockets {
		if t.Proxy.URL != nil {
			return errors.New("create service bus client: an HTTP proxy cannot carry transport amqp: set servicebus.transport: websockets")
		}
		tc, err := t.TLSConfig()
		if err != nil {
			return fmt.Errorf("create service bus client: %w", err)
		}
		// The SDK would send host:port as the server name when the
		// endpoint names a port; the certificate names the host.
		tc.ServerName = hostOnly(namespace)
		opts.TLSConfig = tc
		return nil
	}
	tr, err := t.HTTPTransport()
	if err != nil {
		return fmt.Errorf("create service bus client: %w", err)
	}
	hc := &http.Client{Transport: tr}
	opts.NewWebSocketConn = func(ctx context.Context, args azservicebus.NewWebSocketConnArgs) (net.Conn, error) {
		c, _, err := websocket.Dial(ctx, args.Host, &websocket.DialOptions{
			HTTPClient:   hc,
			Subprotocols: []string{WebSocketSubprotocol},
		})
		if err != nil {
			return nil, fmt.Errorf("open websocket to %s: %w", redactHost(args.Host), err)
		}
		if c.Subprotocol() != WebSocketSubprotocol {
			c.CloseNow()
			return nil, fmt.Errorf("open websocket to %s: the server did not agree to subprotocol %s", redactHost(args.Host), WebSocketSubprotocol)
		}
		// Each AMQP frame the SDK writes is one message: Service Bus reads
		// messages of any size. wsconn rather than websocket.NetConn: the
		// latter arms a context callback per frame read and per write.
		return wsconn.New(c, 0), nil
	}
	return nil
}

// Dial is where the namespace's host[:port] is reached over this
// transport: the host, and the endpoint's port or the transport's own
// (443 for WebSockets, 5671 for AMQP).
func (t Transport) Dial(namespace string) string {
	if _, _, err := net.SplitHostPort(namespace); err == nil {
		return namespace
	}
	if t.WebSockets {
		return net.JoinHostPort(hostOnly(namespace), "443")
	}
	return net.JoinHostPort(hostOnly(namespace), "5671")
}

// HostOnly drops a port from host:port.
func HostOnly(hostport string) string { return hostOnly(hostport) }

// hostOnly drops a port from host:port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.Trim(hostport, "[]")
}

// redactHost keeps a URL's scheme, host and path for an error message.
func redactHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the namespace"
	}
	return u.Scheme + "://" + u.Host + u.Path
}
