package directory

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"
)

// Causes of a TLSError.
const (
	CauseCAFile            = "ca file"            // tls.caFile unreadable, empty, or a certificate in it does not parse
	CauseUnknownAuthority  = "unknown authority"  // the chain does not lead to a trusted CA
	CauseNameMismatch      = "name mismatch"      // the certificate does not carry the expected name
	CauseExpired           = "expired"            // a certificate of the chain is past its notAfter
	CauseNotYetValid       = "not yet valid"      // a certificate of the chain is before its notBefore
	CauseNegativeSerial    = "negative serial"    // a certificate with a negative serial that this build cannot parse
	CausePinMismatch       = "pin mismatch"       // no key of the chain matches tls.pinSHA256
	CauseUsage             = "usage"              // the certificate is not for server authentication, or a CA is not a CA
	CauseInsecureAlgorithm = "insecure algorithm" // signed with SHA-1 or MD5
	CauseNotTLS            = "not tls"            // the first bytes back are not a TLS record
	CauseLDAPSPort         = "ldaps port"         // ldap:// with StartTLS to the LDAPS port
	CauseStartTLSRefused   = "starttls refused"   // the server answered StartTLS with an error
	CauseHandshake         = "handshake"          // any other handshake failure
)

// TLSError is a failed TLS connection to a DC, diagnosed. Msg says what was
// seen, Fix what to do; Error joins both, so the log, /readyz and `check`
// carry the same words.
type TLSError struct {
	Cause string
	Msg   string
	Fix   string
	Err   error
}

// Error carries the fix as well, for the log and /readyz, which have no
// fix line of their own.
func (e *TLSError) Error() string { return e.Msg + "; fix: " + e.Fix }

// Unwrap returns the underlying x509, tls or network error.
func (e *TLSError) Unwrap() error { return e.Err }

const (
	dateFormat = "2006-01-02 15:04:05 MST"
	caHowTo    = "Samba: the DC's private/tls/ca.pem; Windows AD CS: `certutil -ca.cert ca.cer` on the CA"
	reissue    = "reissue the DC's certificate: on Samba set `tls keyfile`, `tls certfile` and `tls cafile` in smb.conf to a certificate from your CA with the DC's DNS name in subjectAltName; on Windows enroll the DC for the \"Domain Controller Authentication\" or \"Kerberos Authentication\" template (AD CS)"
)

// negativeSerialFix: only a build without agent/main.go's //go:debug
// setting (or a GODEBUG that overrides it) refuses negative serials.
const negativeSerialFix = "run the released wbagent binary, which accepts negative serials, without GODEBUG=x509negativeserial=0; or " + reissue

func describe(c *x509.Certificate) string {
	s := c.Subject.String()
	if s == "" {
		s = "empty subject"
	}
	return "\"" + s + "\""
}

func pinError(certs []*x509.Certificate, pins []string) *TLSError {
	seen := make([]string, len(certs))
	for i, c := range certs {
		seen[i] = fmt.Sprintf("%s for %s", PinSHA256(c), describe(c))
	}
	return &TLSError{Cause: CausePinMismatch,
		Msg: fmt.Sprintf("no key the DC presented matches tls.pinSHA256 (%s); the DC presented %s", strings.Join(pins, ", "), strings.Join(seen, "; ")),
		Fix: "if the DC was re-keyed on purpose, put the new pin in tls.pinSHA256 (check it out of band: `wbagent tls show` on a trusted network); otherwise something answers in the DC's place"}
}

func datesError(c *x509.Certificate, now time.Time) *TLSError {
	if now.Before(c.NotBefore) {
		return &TLSError{Cause: CauseNotYetValid,
			Msg: fmt.Sprintf("certificate %s is not valid before %s; this host's clock reads %s", describe(c), c.NotBefore.UTC().Format(dateFormat), now.UTC().Format(dateFormat)),
			Fix: "correct the clock of this host or of the DC (NTP), or wait until the certificate's start date"}
	}
	return &TLSError{Cause: CauseExpired,
		Msg: fmt.Sprintf("certificate %s expired on %s; this host's clock reads %s", describe(c), c.NotAfter.UTC().Format(dateFormat), now.UTC().Format(dateFormat)),
		Fix: "renew the DC's certificate (Samba regenerates its own when private/tls/{key,cert,ca}.pem are removed, or " + reissue + "); if the clock is wrong, correct it (NTP)"}
}

func nameError(c *x509.Certificate, host string, err error) *TLSError {
	msg := fmt.Sprintf("the DC's certificate %s names %s, not %s", describe(c), strings.Join(certNames(c), ", "), host)
	if net.ParseIP(host) != nil && !hasSANExtension(c) {
		msg += " (a name in the CN is never matched to an IP address)"
	}
	return &TLSError{Cause: CauseNameMismatch, Err: err, Msg: msg,
		Fix: "connect by a name the certificate carries, or set tls.serverName to it (keep the address in servers)"}
}

// chainError explains why leaf.Verify refused the chain.
func (tr *trust) chainError(err error, certs []*x509.Certificate, now time.Time) *TLSError {
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	var ia x509.InsecureAlgorithmError
	switch {
	case errors.As(err, &ua):
		top := certs[len(certs)-1]
		if ua.Cert != nil {
			top = ua.Cert
		}
		if strings.Contains(err.Error(), "insecure algorithm") {
			return &TLSError{Cause: CauseInsecureAlgorithm, Err: err,
				Msg: fmt.Sprintf("the DC's certificate %s is signed with %s, which can be forged and is refused", describe(top), top.SignatureAlgorithm),
				Fix: reissue + ", signed with SHA-256"}
		}
		if tr.caFile != "" && slices.Contains(tr.subjects, top.Issuer.String()) {
			return &TLSError{Cause: CauseUnknownAuthority, Err: err,
				Msg: fmt.Sprintf("CA file %s holds a CA named \"%s\", but not the one that signed the DC's certificate %s: the CA was re-created with the same name (as Samba does when it regenerates its certificate)", tr.caFile, top.Issuer.String(), describe(certs[0])),
				Fix: "copy the DC's current CA certificate into tls.caFile (" + caHowTo + "), or pin its key with tls.pinSHA256"}
		}
		where := "the system roots"
		if tr.caFile != "" {
			where = fmt.Sprintf("CA file %s, which holds %s", tr.caFile, strings.Join(quoteAll(tr.subjects), ", "))
		}
		return &TLSError{Cause: CauseUnknownAuthority, Err: err,
			Msg: fmt.Sprintf("the DC's certificate %s was issued by \"%s\", which is not in %s", describe(certs[0]), top.Issuer.String(), where),
			Fix: "set tls.caFile to the PEM of the CA \"" + top.Issuer.String() + "\" (" + caHowTo + "; `wbagent tls show URL --save-ca FILE` saves it when the DC sends it), or pin its key with tls.pinSHA256"}
	case errors.As(err, &ci):
		c := ci.Cert
		if c == nil {
			c = certs[0]
		}
		switch ci.Reason {
		case x509.Expired:
			return datesError(c, now)
		case x509.IncompatibleUsage:
			return &TLSError{Cause: CauseUsage, Err: err,
				Msg: fmt.Sprintf("certificate %s is not for server authentication (its extended key usage lacks serverAuth)", describe(c)),
				Fix: reissue}
		case x509.NotAuthorizedToSign:
			return &TLSError{Cause: CauseUsage, Err: err,
				Msg: fmt.Sprintf("certificate %s signed the DC's certificate but is not a CA", describe(c)),
				Fix: reissue}
		}
		return &TLSError{Cause: CauseHandshake, Err: err, Msg: fmt.Sprintf("certificate %s is invalid: %v", describe(c), err), Fix: reissue}
	case errors.As(err, &ia):
		return &TLSError{Cause: CauseInsecureAlgorithm, Err: err,
			Msg: fmt.Sprintf("the DC's certificate chain is signed with %s, which can be forged and is refused", x509.SignatureAlgorithm(ia)), Fix: reissue + ", signed with SHA-256"}
	}
	return &TLSError{Cause: CauseHandshake, Err: err, Msg: "verify the DC's certificate: " + err.Error(), Fix: reissue}
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = "\"" + s + "\""
	}
	return out
}

// diagnose turns a failed LDAPS handshake or StartTLS into a TLSError.
// Errors this package made already (certificate checks) pass through.
func diagnose(err error, srv *server) error {
	var te *TLSError
	if errors.As(err, &te) {
		return te
	}
	var rh tls.RecordHeaderError
	switch {
	case errors.As(err, &rh):
		what := fmt.Sprintf("bytes % x", rh.RecordHeader[:])
		if rh.RecordHeader[0] == 0x30 {
			what = "an LDAP message: this is a plain LDAP port"
		}
		return &TLSError{Cause: CauseNotTLS, Err: err,
			Msg: fmt.Sprintf("%s does not speak TLS: the first bytes back are %s, not a TLS record", srv.addr(), what),
			Fix: "use ldaps://" + srv.host + ":636, or ldap://" + srv.host + ":" + srv.port + " with tls.startTLS: true"}
	case strings.Contains(err.Error(), "negative serial number"):
		return &TLSError{Cause: CauseNegativeSerial, Err: err,
			Msg: "the DC's certificate has a negative serial number, which this build cannot parse",
			Fix: negativeSerialFix}
	case errors.Is(err, context.DeadlineExceeded):
		return &TLSError{Cause: CauseHandshake, Err: err,
			Msg: fmt.Sprintf("%s did not complete a TLS handshake in time", srv.addr()),
			Fix: "check the port speaks LDAPS (636), or use ldap://" + srv.host + ":389 with tls.startTLS: true"}
	case (errors.Is(err, io.EOF) || isReset(err)) && (srv.port == "389" || srv.port == "3268"):
		return &TLSError{Cause: CauseHandshake, Err: err,
			Msg: fmt.Sprintf("%s closed the connection during the TLS handshake, before sending anything back: port %s is the plain LDAP port, where TLS starts with StartTLS", srv.addr(), srv.port),
			Fix: "use ldap://" + srv.host + ":" + srv.port + " with tls.startTLS: true, or ldaps://" + srv.host + ":636"}
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err):
		return &TLSError{Cause: CauseHandshake, Err: err,
			Msg: fmt.Sprintf("%s closed the connection during the TLS handshake, before sending anything back", srv.addr()),
			Fix: "check the DC has a certificate for LDAPS (Samba: tls enabled = yes; Windows: a Domain Controller certificate from AD CS) and the port is 636"}
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return &TLSError{Cause: CauseHandshake, Err: err,
			Msg: fmt.Sprintf("%s refused the TLS handshake: %v", srv.addr(), err),
			Fix: "the DC accepts none of TLS 1.2/1.3 with modern ciphers, or wants a client certificate: enable TLS 1.2 on the DC"}
	}
	return &TLSError{Cause: CauseHandshake, Err: err, Msg: fmt.Sprintf("TLS handshake with %s: %v", srv.addr(), err),
		Fix: "check the DC's TLS setup"}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && strings.Contains(oe.Err.Error(), "reset")
}

// legacyNotes names what is legacy about a chain that was accepted: the
// reasons `check` warns, each something a reissued certificate fixes.
func legacyNotes(chain []*x509.Certificate) []string {
	var notes []string
	if len(chain) == 0 {
		return nil
	}
	leaf := chain[0]
	if !hasSANExtension(leaf) {
		notes = append(notes, "names the host only in its subject CN (no subjectAltName)")
	}
	for i, c := range chain {
		who := "its CA " + describe(c)
		if i == 0 {
			who = "it"
		}
		if c.SerialNumber != nil && c.SerialNumber.Sign() < 0 {
			notes = append(notes, who+" has a negative serial number")
		}
		if k, ok := c.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
			notes = append(notes, fmt.Sprintf("%s has an RSA-%d key", who, k.N.BitLen()))
		}
		selfSigned := bytes.Equal(c.RawIssuer, c.RawSubject)
		switch c.SignatureAlgorithm {
		case x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.DSAWithSHA1, x509.MD5WithRSA, x509.MD2WithRSA:
			if !selfSigned {
				notes = append(notes, fmt.Sprintf("%s is signed with %v", who, c.SignatureAlgorithm))
			}
		}
	}
	return notes
}

// keyDesc is "RSA-2048", "ECDSA P-256", "Ed25519".
func keyDesc(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA-%d", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return c.PublicKeyAlgorithm.String()
}
