//go:debug x509negativeserial=1

package sambadc

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"os"
	"strings"
	"testing"
)

// TestSambaCert starts a DC that serves the certificate Samba generated
// itself: the harness writes none, and the certificate carries the host in
// its CN only.
func TestSambaCert(t *testing.T) {
	dc := startDC(t, Options{SambaCert: true})
	raw, err := os.ReadFile(dc.CACertPath())
	if err != nil {
		t.Fatalf("Samba wrote no CA file: %v", err)
	}
	if b, _ := pem.Decode(raw); b == nil {
		t.Fatalf("%s holds no PEM block", dc.CACertPath())
	}
	conn, err := tls.Dial("tcp", dc.IP()+":636", dc.TLSConfig())
	if err != nil {
		t.Fatalf("TLS to %s: %v", dc.IP(), err)
	}
	defer conn.Close()
	chain := conn.ConnectionState().PeerCertificates
	leaf := chain[0]
	for _, c := range chain {
		t.Logf("presented: subject %q issuer %q serial %v SANs %v key %T sig %v", c.Subject, c.Issuer, c.SerialNumber, c.DNSNames, c.PublicKey, c.SignatureAlgorithm)
	}
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != 0 {
		t.Fatalf("leaf has SANs %v %v: not Samba's own certificate", leaf.DNSNames, leaf.IPAddresses)
	}
	if !strings.EqualFold(leaf.Subject.CommonName, dc.ServerName()) {
		t.Fatalf("leaf CN %q, want %s", leaf.Subject.CommonName, dc.ServerName())
	}
	if _, err := dc.Entry(context.Background(), dc.BaseDN(), "objectClass"); err != nil {
		t.Fatalf("admin connection over Samba's certificate: %v", err)
	}
}
