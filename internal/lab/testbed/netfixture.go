package testbed

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// Serve accepts on ln until the test ends and hands each connection to
// handle with a ten-second deadline, closing it afterwards: the loop every
// loopback stand-in server of the tests needs, so a test writes only what
// its server says.
func Serve(t testing.TB, ln net.Listener, handle func(net.Conn)) string {
	t.Helper()
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// ServeTLS serves TLS with cert on a loopback port: it completes the
// handshake, waits for the client to send or close, and closes. It returns
// host:port, for tests that only look at what the handshake shows.
func ServeTLS(t testing.TB, cert tls.Certificate) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, ln, func(c net.Conn) {
		_ = c.(*tls.Conn).Handshake()
		_, _ = c.Read(make([]byte, 512))
	})
}

// WriteClientCert is EntraClientCert for a test: the common name is
// wbagent-<file name>, and a failure fails t.
func WriteClientCert(t testing.TB, path string, notBefore, notAfter time.Time) *x509.Certificate {
	t.Helper()
	cert, err := EntraClientCert(path, "wbagent-"+filepath.Base(path), notBefore, notAfter)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
