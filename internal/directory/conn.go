package directory

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Policy hints control OIDs (history enforced on reset).
const (
	OIDPolicyHints           = "1.2.840.113556.1.4.2239"
	OIDPolicyHintsDeprecated = "1.2.840.113556.1.4.2066"
)

// rootDSE is what a connection learns about its server at connect time.
type rootDSE struct {
	namingContext string
	dnsHostName   string
	controls      []string
	saslMechs     []string
}

// policyHintsOID returns the policy hints control the server advertises,
// or "".
func (r rootDSE) policyHintsOID() string {
	for _, oid := range []string{OIDPolicyHints, OIDPolicyHintsDeprecated} {
		if slices.Contains(r.controls, oid) {
			return oid
		}
	}
	return ""
}

// connectError marks failures that say nothing about the request: the
// server could not be reached, spoke no TLS, or went away. The next server
// is tried.
type connectError struct {
	stage string // tcp, tls, starttls
	srv   string
	err   error
}

func (e *connectError) Error() string {
	return fmt.Sprintf("connect to %s (%s): %v", e.srv, e.stage, e.err)
}

func (e *connectError) Unwrap() error { return e.err }

// dialer opens encrypted, bound connections to the servers of one domain.
type dialer struct {
	opts   *Options
	domain *Domain
	binder binder
}

// dial connects to srv, negotiates TLS, binds and reads the rootDSE, all
// within the dial timeout.
func (d *dialer) dial(ctx context.Context, srv *server) (*ldap.Conn, rootDSE, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.DialTimeout)
	defer cancel()
	conn, err := d.open(ctx, srv)
	if err != nil {
		return nil, rootDSE{}, err
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	setDeadline(ctx, conn)
	if err := d.binder.bind(ctx, conn, srv); err != nil {
		if ctx.Err() != nil || isNetwork(err) {
			return nil, rootDSE{}, &connectError{stage: "bind", srv: srv.url, err: orCtx(ctx, err)}
		}
		return nil, rootDSE{}, fmt.Errorf("bind to %s as %s: %w", srv.url, d.binder.who(), err)
	}
	root, err := readRootDSE(conn)
	if err != nil {
		return nil, rootDSE{}, &connectError{stage: "rootDSE", srv: srv.url, err: orCtx(ctx, err)}
	}
	ok = true
	return conn, root, nil
}

// open makes the TCP connection and the TLS session (LDAPS or StartTLS),
// without binding. A TLS failure comes back as a diagnosed *TLSError inside
// the connectError.
func (d *dialer) open(ctx context.Context, srv *server) (*ldap.Conn, error) {
	tr, err := loadTrust(d.domain.TLS, srv.hostname, d.opts.Now)
	if err != nil {
		// Transient like any TLS failure: a corrected CA file is read on
		// the next connection, so requests wait for it.
		return nil, &connectError{stage: "tls", srv: srv.url, err: err}
	}
	raw, err := d.opts.Dial(ctx, "tcp", srv.addr())
	if err != nil {
		return nil, &connectError{stage: "tcp", srv: srv.url, err: err}
	}
	stage := "tls"
	var tc *tls.Conn
	if srv.ldaps {
		tc = tls.Client(raw, tr.config())
		err = tc.HandshakeContext(ctx)
		if err != nil {
			err = diagnose(orCtx(ctx, err), srv)
		}
	} else {
		stage = "starttls"
		tc, err = startTLS(ctx, raw, tr.config(), srv)
	}
	if err != nil {
		raw.Close()
		return nil, &connectError{stage: stage, srv: srv.url, err: err}
	}
	conn := ldap.NewConn(tc, true)
	conn.Start()
	return conn, nil
}

// setDeadline makes the connection's next requests time out with ctx.
func setDeadline(ctx context.Context, conn *ldap.Conn) {
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left > 0 {
			conn.SetTimeout(left)
			return
		}
		conn.SetTimeout(time.Millisecond)
	}
}

// orCtx prefers the context's error: a connection closed because the
// deadline passed should read as a timeout.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// readRootDSE reads the naming context, host name and supported controls.
func readRootDSE(conn *ldap.Conn) (rootDSE, error) {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"defaultNamingContext", "dnsHostName", "supportedControl", "supportedSASLMechanisms"}, nil))
	if err != nil {
		return rootDSE{}, fmt.Errorf("read rootDSE: %w", err)
	}
	if len(res.Entries) != 1 {
		return rootDSE{}, errors.New("read rootDSE: no entry")
	}
	e := res.Entries[0]
	return rootDSE{
		namingContext: e.GetAttributeValue("defaultNamingContext"),
		dnsHostName:   e.GetAttributeValue("dnsHostName"),
		controls:      e.GetAttributeValues("supportedControl"),
		saslMechs:     e.GetAttributeValues("supportedSASLMechanisms"),
	}, nil
}

// isNetwork reports whether err is a lost or refused connection or a
// timeout rather than an answer from the directory.
func isNetwork(err error) bool {
	if err == nil {
		return false
	}
	var ce *connectError
	if errors.As(err, &ce) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError, ldap.LDAPResultTimeout,
			ldap.LDAPResultBusy, ldap.LDAPResultUnavailable:
			return true
		}
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "connection closed") || strings.Contains(msg, "timed out") || strings.Contains(msg, "EOF")
}
