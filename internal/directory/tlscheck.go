package directory

import (
	"errors"
	"fmt"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// tlsDiagnosis is the detail and fix of a failed TLS connection, in the
// words the log and /readyz use.
func tlsDiagnosis(err error) (detail, fix string) {
	var te *TLSError
	if errors.As(err, &te) {
		return te.Msg, te.Fix
	}
	return err.Error(), "check the DC is running and its LDAPS (636) or LDAP (389, with tls.startTLS) port answers"
}

// tlsRow reports the certificate the DC presented; a legacy one (CN only,
// negative serial, short RSA key, SHA-1) passes with a WARN.
func (c *checker) tlsRow(u string, srv *server, conn *ldap.Conn) {
	st, ok := conn.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		c.add(true, "TLS "+u, "handshake done", "")
		return
	}
	leaf := st.PeerCertificates[0]
	detail := fmt.Sprintf("certificate for %s, issued by %s, valid until %s, %s", strings.Join(certNames(leaf), ", "),
		leaf.Issuer.CommonName, leaf.NotAfter.Format("2006-01-02"), trustedBy(c.d.TLS))
	chain := st.PeerCertificates
	if tr, err := loadTrust(c.d.TLS, srv.hostname, c.o.Now); err == nil {
		if vc, err := tr.verify(st.PeerCertificates); err == nil {
			chain = vc
		}
	}
	notes := legacyNotes(chain)
	if len(notes) == 0 {
		c.add(true, "TLS "+u, detail, "")
		return
	}
	c.rows = append(c.rows, CheckRow{Name: c.prefix + "TLS " + u, OK: true, Warn: true,
		Detail: detail + "; legacy certificate: " + strings.Join(notes, "; "),
		Fix:    "accepted after verification, but " + reissue + " (RSA-2048 or ECDSA key, SHA-256, positive serial)"})
}

// trustedBy says what the chain was verified against.
func trustedBy(t TLS) string {
	switch {
	case len(t.PinSHA256) > 0 && t.CAFile != "":
		return "verified against " + t.CAFile + " and a pinned key"
	case len(t.PinSHA256) > 0:
		return "trusted by a pinned key"
	case t.InsecureSkipVerify:
		return "NOT verified"
	case t.CAFile != "":
		return "verified against " + t.CAFile
	}
	return "verified against the system roots"
}
