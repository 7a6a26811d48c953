package directory

import (
	"strings"
	"testing"
)

// TestServicePrincipal pins the SPN both Kerberos binds (the keytab one and
// Windows SSPI) ask a ticket for: ldap/<host>, lower case, the TLS server
// name winning over the URL's host, and never an address, for which AD has
// no SPN (SSPI would fall back to NTLM or fail).
func TestServicePrincipal(t *testing.T) {
	for _, c := range []struct {
		url, serverName, want, err string
	}{
		{url: "ldaps://DC1.Corp.Example.test", want: "ldap/dc1.corp.example.test"},
		{url: "ldaps://dc1.corp.example.test:636", want: "ldap/dc1.corp.example.test"},
		{url: "ldap://dc2.corp.example.test:389", want: "ldap/dc2.corp.example.test"},
		{url: "ldaps://10.0.0.5:636", serverName: "DC1.corp.example.test", want: "ldap/dc1.corp.example.test"},
		{url: "ldaps://dc-alias.example.test", serverName: "dc1.corp.example.test", want: "ldap/dc1.corp.example.test"},
		{url: "ldaps://10.0.0.5:636", err: "host name, not an address"},
		{url: "ldaps://[::1]:636", err: "host name, not an address"},
	} {
		srv, err := parseServer(c.url, strings.HasPrefix(c.url, "ldap:"))
		if err != nil {
			t.Fatalf("parseServer(%s): %v", c.url, err)
		}
		d := &Domain{Name: "corp.example.test", TLS: TLS{ServerName: c.serverName}}
		got, err := servicePrincipal(d, srv)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s (serverName %q): got %q, %v; want an error with %q", c.url, c.serverName, got, err, c.err)
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s (serverName %q): got %q, %v; want %q", c.url, c.serverName, got, err, c.want)
		}
	}
}
