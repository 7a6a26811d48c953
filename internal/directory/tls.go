package directory

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"
)

// trust is what one domain's TLS settings trust and expect: the roots (the
// CA file, or nil for the system roots), the pinned keys and the name the
// DC's certificate must carry. Certificates are verified here rather than
// by crypto/tls because crypto/tls no longer matches a certificate without
// subjectAltName on its subject CN, and that is what untouched Samba DCs
// and older AD CS templates serve.
type trust struct {
	caFile   string
	roots    *x509.CertPool // nil: the system roots
	subjects []string       // subjects of the CA file's certificates, for messages
	pins     []string       // base64 SHA-256 of SubjectPublicKeyInfo
	name     string
	skip     bool
	now      func() time.Time
}

// loadTrust reads the CA file of t (once per connection, so a corrected
// file is used without a restart) and fixes the name to expect from host.
func loadTrust(t TLS, host string, now func() time.Time) (*trust, error) {
	tr := &trust{caFile: t.CAFile, pins: normalizePins(t.PinSHA256), name: host, skip: t.InsecureSkipVerify, now: now}
	if t.ServerName != "" {
		tr.name = t.ServerName
	}
	if tr.now == nil {
		tr.now = time.Now
	}
	if t.CAFile != "" {
		certs, err := readCAFile(t.CAFile)
		if err != nil {
			return nil, err
		}
		tr.roots = x509.NewCertPool()
		for _, c := range certs {
			tr.roots.AddCert(c)
			tr.subjects = append(tr.subjects, c.Subject.String())
		}
	}
	return tr, nil
}

// config is the client TLS configuration: TLS 1.2 or newer, the expected
// name sent as SNI, and verification done by verify, never skipped (except
// for the test-only InsecureSkipVerify).
func (tr *trust) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		ServerName: tr.name,
		// crypto/tls's own verification is replaced, not dropped:
		// VerifyConnection runs on every handshake and verifies the chain
		// with x509.Certificate.Verify before the name is matched.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if tr.skip {
				return nil
			}
			_, err := tr.verify(cs.PeerCertificates)
			return err
		},
	}
}

// readCAFile parses every certificate of a PEM bundle (or of a single DER
// certificate, the form `certutil -ca.cert` writes), naming the one that
// fails and why.
func readCAFile(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &TLSError{Cause: CauseCAFile, Err: err,
			Msg: fmt.Sprintf("read CA file %s: %v", path, err),
			Fix: "make tls.caFile name a file the service account can read"}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, &TLSError{Cause: CauseCAFile,
			Msg: fmt.Sprintf("CA file %s is empty", path),
			Fix: "put the PEM of the CA that issued the DC's certificate in it (`wbagent tls show ldaps://DC:636 --save-ca " + path + "` writes it)"}
	}
	var certs []*x509.Certificate
	rest, n := data, 0
	for {
		before := rest
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			start := len(data) - len(before) + bytes.Index(before, []byte("-----BEGIN"))
			line := bytes.Count(data[:start], []byte("\n")) + 1
			te := &TLSError{Cause: CauseCAFile, Err: err,
				Msg: fmt.Sprintf("CA file %s: certificate %d (line %d, %s) does not parse: %v", path, n, line, pemSubject(b.Bytes), err),
				Fix: "replace that certificate with a valid PEM copy of the CA, or remove it"}
			if strings.Contains(err.Error(), "negative serial") {
				te.Cause, te.Fix = CauseNegativeSerial, negativeSerialFix
			}
			return nil, te
		}
		certs = append(certs, c)
	}
	if n > 0 {
		return certs, nil
	}
	if c, err := x509.ParseCertificate(data); err == nil {
		return []*x509.Certificate{c}, nil
	}
	return nil, &TLSError{Cause: CauseCAFile,
		Msg: fmt.Sprintf("CA file %s holds no certificate (no -----BEGIN CERTIFICATE----- block, and it is not a DER certificate)", path),
		Fix: "put the PEM of the CA that issued the DC's certificate in it (`wbagent tls show ldaps://DC:636 --save-ca " + path + "` writes it)"}
}

// pemSubject reads the subject of a certificate that does not parse as a
// whole, so the message can say which one it is.
func pemSubject(der []byte) string {
	var c struct {
		TBS struct {
			Raw       asn1.RawContent
			Version   asn1.RawValue `asn1:"optional,explicit,tag:0"`
			Serial    asn1.RawValue
			SigAlg    asn1.RawValue
			Issuer    asn1.RawValue
			Validity  asn1.RawValue
			SubjectDN asn1.RawValue
		}
	}
	if _, err := asn1.Unmarshal(der, &c); err != nil {
		return "not even its subject is readable"
	}
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.TBS.SubjectDN.FullBytes, &seq); err != nil {
		return "unreadable subject"
	}
	var name pkix.Name
	name.FillFromRDNSequence(&seq)
	return "subject " + name.String()
}

// verify checks a presented chain as configured and returns the verified
// chain (leaf first). Pins, when set, are the trust anchor unless a CA file
// is set as well, in which case both must hold; the name is matched unless
// the pinned key is the leaf's own.
func (tr *trust) verify(certs []*x509.Certificate) ([]*x509.Certificate, error) {
	if len(certs) == 0 {
		return nil, &TLSError{Cause: CauseHandshake, Msg: "the DC presented no certificate", Fix: "give the DC a certificate"}
	}
	leaf, now := certs[0], tr.now()
	pinned := -1
	if len(tr.pins) > 0 {
		for i, c := range certs {
			if slices.Contains(tr.pins, PinSHA256(c)) {
				pinned = i
				break
			}
		}
		if pinned < 0 {
			return nil, pinError(certs, tr.pins)
		}
	}
	chain := certs[:pinned+1]
	switch {
	case pinned < 0 || tr.caFile != "":
		chains, err := leaf.Verify(x509.VerifyOptions{Roots: tr.roots, Intermediates: poolOf(certs[1:]), CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
		if err != nil {
			return nil, tr.chainError(err, certs, now)
		}
		chain = chains[0]
	case pinned > 0:
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: poolOf(certs[pinned : pinned+1]), Intermediates: poolOf(certs[1:pinned]),
			CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return nil, tr.chainError(err, certs, now)
		}
	default:
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return nil, datesError(leaf, now)
		}
	}
	if pinned == 0 {
		return chain, nil
	}
	if err := matchName(leaf, tr.name); err != nil {
		return nil, err
	}
	return chain, nil
}

func poolOf(certs []*x509.Certificate) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p
}

// PinSHA256 is the pin of a certificate's key: the base64 SHA-256 of its
// SubjectPublicKeyInfo, as curl's --pinnedpubkey and
// `openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64` give it.
func PinSHA256(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// CheckPin reports whether p is a well-formed pin: base64 of 32 bytes,
// optionally written with curl's "sha256//" prefix.
func CheckPin(p string) error {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(p, "sha256//"))
	if err != nil || len(b) != sha256.Size {
		return fmt.Errorf("pin %q is not the base64 SHA-256 of a public key (44 characters ending in =): print the DC's pins with `wbagent tls show ldaps://DC:636`", p)
	}
	return nil
}

// normalizePins drops curl's "sha256//" prefix so pins compare as written
// by either tool.
func normalizePins(pins []string) []string {
	out := make([]string, len(pins))
	for i, p := range pins {
		out[i] = strings.TrimPrefix(strings.TrimSpace(p), "sha256//")
	}
	return out
}

var oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}

// hasSANExtension reports whether c carries a subjectAltName extension at
// all (even one with no DNS name): only then are its SANs authoritative.
func hasSANExtension(c *x509.Certificate) bool {
	return slices.ContainsFunc(c.Extensions, func(e pkix.Extension) bool { return e.Id.Equal(oidSubjectAltName) })
}

// matchName checks c names host: on its SANs when it has the extension
// (exactly as crypto/tls would), else on its subject CN, case-insensitive
// and exact, with a wildcard only as the whole left-most label (RFC 6125
// §6.4.3). An IP address is never matched to a CN.
func matchName(c *x509.Certificate, host string) error {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if hasSANExtension(c) {
		if err := c.VerifyHostname(host); err != nil {
			return nameError(c, host, err)
		}
		return nil
	}
	if net.ParseIP(host) == nil && cnMatches(c.Subject.CommonName, host) {
		return nil
	}
	return nameError(c, host, nil)
}

// cnMatches compares a subject CN with a host name as RFC 6125 allows.
func cnMatches(cn, host string) bool {
	cn = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(cn)), ".")
	if cn == "" || host == "" {
		return false
	}
	if !strings.Contains(cn, "*") {
		return cn == host
	}
	rest, ok := strings.CutPrefix(cn, "*.")
	if !ok || strings.Contains(rest, "*") || !strings.Contains(rest, ".") {
		return false
	}
	first, hostRest, ok := strings.Cut(host, ".")
	return ok && first != "" && hostRest == rest
}

// certNames lists the names a certificate carries, the way matchName reads
// them.
func certNames(c *x509.Certificate) []string {
	if !hasSANExtension(c) {
		if c.Subject.CommonName == "" {
			return []string{"none (no subjectAltName, no CN)"}
		}
		return []string{"CN " + c.Subject.CommonName + " (no subjectAltName)"}
	}
	names := append([]string{}, c.DNSNames...)
	names = append(names, ipStrings(c.IPAddresses)...)
	if len(names) == 0 {
		return []string{"no DNS name or address in its subjectAltName"}
	}
	return names
}
