package bus

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Endpoint is what the agent needs to know of a connection string before
// the SDK reads it: the host and whether it asks for the emulator's plain
// AMQP.
type Endpoint struct {
	// Host is host[:port] of the namespace.
	Host string
	// Emulator is UseDevelopmentEmulator=true: plain AMQP, no TLS.
	Emulator bool
}

// ParseEndpoint reads Endpoint and UseDevelopmentEmulator from a
// connection string. Its errors never quote the string: it holds the key.
func ParseEndpoint(cs string) (Endpoint, error) {
	var ep Endpoint
	for _, part := range strings.Split(cs, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		switch {
		case strings.EqualFold(k, "Endpoint"):
			u, err := url.Parse(v)
			if err != nil || u.Host == "" {
				return ep, errors.New("the connection string is not valid: its Endpoint is not a URL: expected Endpoint=sb://NAMESPACE.servicebus.windows.net/")
			}
			ep.Host = u.Host
		case strings.EqualFold(k, "UseDevelopmentEmulator"):
			b, err := strconv.ParseBool(v)
			if err != nil {
				return ep, fmt.Errorf("the connection string is not valid: UseDevelopmentEmulator=%q is not true or false", v)
			}
			ep.Emulator = b
		}
	}
	if ep.Host == "" {
		return ep, errors.New("the connection string is not valid: it has no Endpoint: expected Endpoint=sb://NAMESPACE.servicebus.windows.net/;SharedAccessKeyName=NAME;SharedAccessKey=KEY")
	}
	return ep, nil
}

// Allowed says whether the agent connects to this endpoint over t: plain
// AMQP (UseDevelopmentEmulator=true) only on this machine, and never over
// WebSockets.
func (ep Endpoint) Allowed(t Transport) error { return ep.allowed(t) }

// allowed refuses plain AMQP anywhere but on this machine.
// UseDevelopmentEmulator=true makes the SDK skip TLS: the SAS token and
// every request (sealed though it is) would cross the network in clear,
// and anyone on the path could read or replace the broker's answers.
func (ep Endpoint) allowed(t Transport) error {
	if !ep.Emulator {
		return nil
	}
	if !isLoopback(hostOnly(ep.Host)) {
		return fmt.Errorf("UseDevelopmentEmulator=true is plain AMQP without TLS and is accepted only for a loopback endpoint (localhost, 127.0.0.0/8, ::1), not %s: remove it from the connection string to connect with TLS", ep.Host)
	}
	if t.WebSockets {
		return errors.New("UseDevelopmentEmulator=true is plain AMQP on TCP and cannot use transport websockets: remove it from the connection string, or set servicebus.transport: amqp")
	}
	return nil
}

// isLoopback reports whether host names this machine without a lookup
// that someone else could answer.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
