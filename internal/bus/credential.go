package bus

import (
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"wbagent/internal/secret"
)

// Credential kinds of servicebus.credential.type.
const (
	CredentialDefault           = "default"
	CredentialManagedIdentity   = "managedIdentity"
	CredentialWorkloadIdentity  = "workloadIdentity"
	CredentialClientSecret      = "clientSecret"
	CredentialClientCertificate = "clientCertificate"
)

// Credential describes an Entra ID identity for the namespace.
type Credential struct {
	// Kind is one of the Credential* constants; empty is default.
	Kind     string
	TenantID string
	ClientID string
	// Secret is the client secret (clientSecret). NewCredential copies it
	// into azidentity; the caller destroys it afterwards.
	Secret *secret.Secret
	// CertificateFile is a PEM or PKCS#12 file with the certificate and
	// its private key (clientCertificate); CertificatePassword decrypts it.
	CertificateFile     string
	CertificatePassword *secret.Secret
	// TokenFile is the federated token file (workloadIdentity); empty
	// takes AZURE_FEDERATED_TOKEN_FILE.
	TokenFile string
	// AuthorityHost is the Entra ID authority; empty is public Azure.
	AuthorityHost string
}

// NewCredential makes the azidentity credential. Token requests go through
// t's proxy and trust t's CA, like the connection to the namespace, so a
// host that reaches the bus also reaches the authority. Instance discovery
// is off: the authority is the one configured, not one a metadata lookup
// names.
func NewCredential(c Credential, t Transport) (azcore.TokenCredential, error) {
	opts := azcore.ClientOptions{}
	if c.AuthorityHost != "" {
		opts.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: c.AuthorityHost, Services: cloud.AzurePublic.Services}
	}
	if c.Kind != CredentialManagedIdentity {
		// The managed identity endpoint is on the host or link-local, not
		// behind servicebus.proxy; every other kind talks to the authority.
		tr, err := t.HTTPTransport()
		if err != nil {
			return nil, fmt.Errorf("credential: %w", err)
		}
		opts.Transport = &http.Client{Transport: tr}
	}
	switch c.Kind {
	case "", CredentialDefault:
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{
			ClientOptions: opts, TenantID: c.TenantID, DisableInstanceDiscovery: c.AuthorityHost != ""})
	case CredentialManagedIdentity:
		o := azidentity.ManagedIdentityCredentialOptions{ClientOptions: opts}
		if c.ClientID != "" {
			o.ID = azidentity.ClientID(c.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(&o)
	case CredentialWorkloadIdentity:
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientOptions: opts, TenantID: c.TenantID, ClientID: c.ClientID, TokenFilePath: c.TokenFile,
			DisableInstanceDiscovery: true})
	case CredentialClientSecret:
		if c.Secret.IsEmpty() {
			return nil, errors.New("credential clientSecret: the client secret is empty")
		}
		return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, c.Secret.Reveal(),
			&azidentity.ClientSecretCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true})
	case CredentialClientCertificate:
		data, err := os.ReadFile(c.CertificateFile)
		if err != nil {
			return nil, fmt.Errorf("credential clientCertificate: %w", err)
		}
		defer clear(data)
		var pw []byte
		if !c.CertificatePassword.IsEmpty() {
			pw = c.CertificatePassword.Bytes()
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			// azidentity's message says what it could not find; it never
			// quotes the key or the password.
			return nil, fmt.Errorf("credential clientCertificate: read %s: %w", c.CertificateFile, err)
		}
		return azidentity.NewClientCertificateCredential(c.TenantID, c.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: opts, DisableInstanceDiscovery: true, SendCertificateChain: true})
	}
	return nil, fmt.Errorf("credential: type %q is not known: use default, managedIdentity, workloadIdentity, clientSecret or clientCertificate", c.Kind)
}
