package directory

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Inspection is what a DC presents on its TLS port, and whether it verifies
// with given settings: for `wbagent tls show`, which bootstraps trust
// without openssl.
type Inspection struct {
	URL string
	// Version is the negotiated TLS version, e.g. "TLS 1.3".
	Version string
	// Chain is the certificates as presented, leaf first.
	Chain []*x509.Certificate
	// Name is the name the leaf must carry.
	Name string
	// TrustedBy says what the chain was verified against.
	TrustedBy string
	// Verify is nil when the chain verifies with the settings, else the
	// diagnosis (a *TLSError).
	Verify error
	// Legacy names what is legacy about an accepted certificate.
	Legacy []string
}

// Inspect connects to u (ldaps://, or ldap:// when t.StartTLS) and reads the
// chain the server presents, without trusting it and without binding: no
// credential is sent. The chain is then verified as the agent would with t.
// An error means no chain was obtained.
func Inspect(ctx context.Context, u string, t TLS, timeout time.Duration) (*Inspection, error) {
	srv, err := parseServer(u, t.StartTLS)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("tls inspect %s: timeout %s: give a positive duration", u, timeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in := &Inspection{URL: u, Name: srv.hostname, TrustedBy: trustedBy(t)}
	if t.ServerName != "" {
		in.Name = t.ServerName
	}
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", srv.addr())
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", srv.addr(), err)
	}
	defer raw.Close()
	// Trust nothing while reading the chain; it is verified below.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: in.Name, InsecureSkipVerify: true}
	var tc *tls.Conn
	if srv.ldaps {
		tc = tls.Client(raw, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, diagnose(orCtx(ctx, err), srv)
		}
	} else if tc, err = startTLS(ctx, raw, cfg, srv); err != nil {
		return nil, err
	}
	st := tc.ConnectionState()
	_ = tc.Close()
	in.Version = tls.VersionName(st.Version)
	in.Chain = st.PeerCertificates
	if len(in.Chain) == 0 {
		return nil, errors.New("the server presented no certificate")
	}
	tr, err := loadTrust(t, srv.hostname, time.Now)
	if err != nil {
		in.Verify = err
		return in, nil
	}
	chain, err := tr.verify(in.Chain)
	if err != nil {
		in.Verify = err
		return in, nil
	}
	in.Legacy = legacyNotes(chain)
	return in, nil
}

// IssuingCA is the certificate to trust as tls.caFile: the top of the
// presented chain when it is a CA or self-signed, or an error saying where
// to get the CA when the DC sent only its own certificate.
func (in *Inspection) IssuingCA() (*x509.Certificate, error) {
	top := in.Chain[len(in.Chain)-1]
	selfSigned := bytes.Equal(top.RawIssuer, top.RawSubject) && top.CheckSignatureFrom(top) == nil
	if selfSigned || (len(in.Chain) > 1 && top.IsCA) {
		return top, nil
	}
	return nil, fmt.Errorf("the DC sent only its own certificate, not that of its CA %q: copy the CA from the DC (%s), or pin the DC's key with tls.pinSHA256: [%q]",
		top.Issuer.String(), caHowTo, PinSHA256(in.Chain[0]))
}

// Describe writes one certificate's facts, one per line, each prefixed.
func Describe(c *x509.Certificate, now time.Time, prefix string) string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s%-10s %s\n", prefix, k+":", v) }
	line("subject", c.Subject.String())
	line("issuer", c.Issuer.String())
	line("names", strings.Join(certNames(c), ", "))
	serial := c.SerialNumber.String()
	if c.SerialNumber.Sign() < 0 {
		serial += " (negative)"
	}
	line("serial", serial)
	valid := c.NotBefore.UTC().Format(dateFormat) + " to " + c.NotAfter.UTC().Format(dateFormat)
	switch {
	case now.After(c.NotAfter):
		valid += " (EXPIRED)"
	case now.Before(c.NotBefore):
		valid += " (NOT YET VALID)"
	}
	line("valid", valid)
	line("key", keyDesc(c))
	line("signature", c.SignatureAlgorithm.String())
	if c.IsCA {
		line("CA", "yes")
	}
	line("pin", PinSHA256(c))
	return b.String()
}
