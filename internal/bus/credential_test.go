package bus

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wbagent/internal/secret"
)

func TestNewCredentialErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    Credential
		want string
	}{
		{Credential{Kind: "password"}, `type "password" is not known`},
		{Credential{Kind: CredentialClientSecret, TenantID: "t", ClientID: "c"}, "the client secret is empty"},
		{Credential{Kind: CredentialClientCertificate, TenantID: "t", ClientID: "c", CertificateFile: filepath.Join(dir, "missing.pem")}, "missing.pem"},
		{Credential{Kind: CredentialClientCertificate, TenantID: "t", ClientID: "c", CertificateFile: notPEM,
			CertificatePassword: secret.FromString("hunter2-pw")}, "read " + notPEM},
		{Credential{Kind: CredentialClientSecret, TenantID: "t", ClientID: "c", Secret: secret.FromString("s")},
			"servicebus.tls.caFile"},
	} {
		tr := Transport{}
		if strings.Contains(tc.want, "caFile") {
			tr.CAFile = filepath.Join(dir, "no-ca.pem")
		}
		_, err := NewCredential(tc.c, tr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.c.Kind, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}
