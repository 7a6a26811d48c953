package testbed

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
)

// StandInClientOptions sends azidentity's token requests to devbus's Entra
// ID stand-in at authorityHost (https://localhost:PORT/), over TLS that
// trusts pool, devbus's CA.
func StandInClientOptions(authorityHost string, pool *x509.CertPool) azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authorityHost},
		Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}}
}

// EntraSecretClient is an SDK client for the namespace host (localhost:PORT
// of devbus's TLS listener) that authenticates as clientID of tenant with
// a client secret, its token from the stand-in at authorityHost.
func EntraSecretClient(authorityHost, host string, pool *x509.CertPool, tenant, clientID, clientSecret string) (*azservicebus.Client, error) {
	cred, err := azidentity.NewClientSecretCredential(tenant, clientID, clientSecret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: StandInClientOptions(authorityHost, pool), DisableInstanceDiscovery: true})
	if err != nil {
		return nil, fmt.Errorf("client secret credential for %s: %w", clientID, err)
	}
	c, err := azservicebus.NewClient(host, cred, &azservicebus.ClientOptions{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		return nil, fmt.Errorf("service bus client for %s: %w", host, err)
	}
	return c, nil
}
