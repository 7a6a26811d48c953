//go:debug x509negativeserial=1

package directory

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
)

// The package's tests parse negative serials as the wbagent binary does
// (agent/main.go sets the same //go:debug).

// testCA is a certificate authority for unit tests.
type testCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

func newTestCA(t testing.TB, cn string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Organization: []string{"wbagent test"}, CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: c, key: key}
}

// leafSpec describes a server certificate.
type leafSpec struct {
	cn        string
	dnsNames  []string
	ips       []net.IP
	negative  bool // patch the serial negative in the DER, as Samba's often is
	notBefore time.Time
	notAfter  time.Time
	rsaBits   int // 0: ECDSA P-256
	sigAlg    x509.SignatureAlgorithm
}

// issue makes a leaf certificate signed by ca and returns it with its key as
// a tls.Certificate (leaf only, as Samba serves it).
func (ca *testCA) issue(t testing.TB, s leafSpec) tls.Certificate {
	t.Helper()
	var key crypto.Signer
	var err error
	if s.rsaBits > 0 {
		key, err = rsa.GenerateKey(rand.Reader, s.rsaBits)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s.notBefore.IsZero() {
		s.notBefore = time.Now().Add(-time.Hour)
	}
	if s.notAfter.IsZero() {
		s.notAfter = time.Now().Add(12 * time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber:       new(big.Int).SetUint64(serialMarker),
		Subject:            pkix.Name{Organization: []string{"wbagent test"}, CommonName: s.cn},
		NotBefore:          s.notBefore,
		NotAfter:           s.notAfter,
		KeyUsage:           x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:        []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:           s.dnsNames,
		IPAddresses:        s.ips,
		SignatureAlgorithm: s.sigAlg,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		t.Fatal(err)
	}
	if s.negative {
		der = negateSerial(t, der, ca.key)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// serialMarker is a positive serial whose DER encoding (02 08 41 …) is
// easy to find; negateSerial flips its sign bit, which keeps the encoding
// minimal and the length unchanged.
const serialMarker = 0x4142434445464748

// negateSerial makes the serial of der negative and signs the certificate
// again with the issuer's key: crypto/x509 refuses to create such a
// certificate, but Samba's gnutls makes one about half the time.
func negateSerial(t testing.TB, der []byte, issuer crypto.Signer) []byte {
	t.Helper()
	var cert struct {
		TBS    asn1.RawValue
		SigAlg asn1.RawValue
		Sig    asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &cert); err != nil {
		t.Fatal(err)
	}
	tbs := bytes.Clone(cert.TBS.FullBytes)
	marker := []byte{0x02, 0x08, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48}
	i := bytes.Index(tbs, marker)
	if i < 0 {
		t.Fatal("serial marker not found in the TBS certificate")
	}
	tbs[i+2] = 0xC1
	sum := sha256.Sum256(tbs)
	sig, err := issuer.Sign(rand.Reader, sum[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	cert.TBS = asn1.RawValue{FullBytes: tbs}
	cert.Sig = asn1.BitString{Bytes: sig, BitLength: 8 * len(sig)}
	out, err := asn1.Marshal(cert)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// writePEM writes certs as a PEM bundle in the test's temporary folder.
func writePEM(t testing.TB, name string, certs ...*x509.Certificate) string {
	t.Helper()
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// rawServer answers each connection with reply (after reading what the
// client sends first) and closes it; a nil reply closes at once.
func rawServer(t testing.TB, reply []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return testbed.Serve(t, ln, func(c net.Conn) {
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		if reply == nil {
			return
		}
		_, _ = c.Write(reply)
		_, _ = c.Read(buf)
	})
}

// tlsServerConn is the server side of TLS on c (after StartTLS).
func tlsServerConn(c net.Conn, cert tls.Certificate) *tls.Conn {
	return tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
}
