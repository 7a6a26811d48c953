package bus

import (
	"errors"
	"fmt"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/secret"
)

// Connection says how to reach the Service Bus namespace: a connection
// string, or a namespace with an Entra ID credential.
type Connection struct {
	// ConnectionString is "Endpoint=sb://...;SharedAccessKeyName=...;
	// SharedAccessKey=..." (with UseDevelopmentEmulator=true for a local
	// endpoint without TLS).
	ConnectionString *secret.Secret
	// Namespace is the fully qualified namespace (contoso.servicebus.windows.net)
	// used with Credential when ConnectionString is empty.
	Namespace  string
	Credential azcore.TokenCredential
	// Retry is the SDK's policy for retrying operations and recovering
	// connections and links. Zero fields take the SDK's defaults.
	Retry azservicebus.RetryOptions
	// ApplicationID is sent to the namespace to name the client in its logs.
	ApplicationID string
	// Transport is the wire protocol, CA and proxy.
	Transport Transport
}

// Secrets lists the resolved secrets c holds, for the caller to destroy
// once the client is closed.
func (c Connection) Secrets() []*secret.Secret {
	var s []*secret.Secret
	for _, x := range []*secret.Secret{c.ConnectionString, c.Transport.Proxy.Password} {
		if x != nil {
			s = append(s, x)
		}
	}
	return s
}

// NewClient makes an azservicebus client. It does not connect: the SDK
// connects on first use and reconnects by itself.
func NewClient(c Connection) (*azservicebus.Client, error) {
	opts := &azservicebus.ClientOptions{RetryOptions: c.Retry, ApplicationID: c.ApplicationID}
	switch {
	case !c.ConnectionString.IsEmpty():
		ep, err := ParseEndpoint(c.ConnectionString.Reveal())
		if err != nil {
			return nil, fmt.Errorf("create service bus client: %w", err)
		}
		if err := ep.allowed(c.Transport); err != nil {
			return nil, fmt.Errorf("create service bus client: %w", err)
		}
		if !ep.Emulator {
			if err := c.Transport.clientOptions(opts, ep.Host); err != nil {
				return nil, err
			}
		}
		client, err := azservicebus.NewClientFromConnectionString(c.ConnectionString.Reveal(), opts)
		if err != nil {
			// The SDK's message may quote the string; say only what is wrong.
			return nil, errors.New("create service bus client: the connection string is not valid: expected Endpoint=sb://HOST;SharedAccessKeyName=NAME;SharedAccessKey=KEY")
		}
		return client, nil
	case c.Namespace != "" && c.Credential != nil:
		if err := c.Transport.clientOptions(opts, c.Namespace); err != nil {
			return nil, err
		}
		client, err := azservicebus.NewClient(c.Namespace, c.Credential, opts)
		if err != nil {
			return nil, fmt.Errorf("create service bus client for namespace %q: %w", c.Namespace, err)
		}
		return client, nil
	}
	return nil, errors.New("create service bus client: set servicebus.connectionString, or servicebus.namespace with a credential")
}
