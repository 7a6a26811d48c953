package agent

import (
	"fmt"
	"net/url"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"wbagent/internal/bus"
	"wbagent/internal/config"
)

// BusTransport maps servicebus.transport, tls and proxy onto a
// bus.Transport, resolving the proxy password. On error the password
// resolved so far is in the result, for the caller to destroy.
func BusTransport(sb config.ServiceBus, getenv func(string) string) (bus.Transport, error) {
	t := bus.Transport{WebSockets: sb.Transport == config.TransportWebSockets, CAFile: sb.TLS.CAFile}
	switch sb.Proxy {
	case "":
	case config.ProxyNone:
		t.Proxy.None = true
	default:
		u, err := url.Parse(sb.Proxy)
		if err != nil {
			return t, fmt.Errorf("servicebus.proxy: not a URL: write it like http://proxy.corp.example:8080")
		}
		t.Proxy.URL = u
	}
	if a := sb.ProxyAuth; a != nil {
		pw, err := a.Password.Resolve(getenv)
		if err != nil {
			return t, fmt.Errorf("servicebus.proxyAuth.password: %w", err)
		}
		t.Proxy.User, t.Proxy.Password = a.User, pw
	}
	return t, nil
}

// BusCredential builds the Entra ID credential of servicebus.credential;
// its token requests take the same proxy and CA as the bus.
func BusCredential(c *config.Credential, t bus.Transport, getenv func(string) string) (azcore.TokenCredential, error) {
	if c == nil {
		c = &config.Credential{Type: bus.CredentialDefault}
	}
	bc := bus.Credential{Kind: c.Type, TenantID: c.TenantID, ClientID: c.ClientID,
		CertificateFile: c.CertificateFile, TokenFile: c.TokenFile, AuthorityHost: c.AuthorityHost}
	if c.Type == bus.CredentialClientSecret {
		s, err := c.ClientSecret.Resolve(getenv)
		if err != nil {
			return nil, fmt.Errorf("clientSecret: %w", err)
		}
		defer s.Destroy()
		bc.Secret = s
	}
	if c.CertificatePassword != nil {
		s, err := c.CertificatePassword.Resolve(getenv)
		if err != nil {
			return nil, fmt.Errorf("certificatePassword: %w", err)
		}
		defer s.Destroy()
		bc.CertificatePassword = s
	}
	return bus.NewCredential(bc, t)
}
