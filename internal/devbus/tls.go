package devbus

import (
	"bufio"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Files devbus keeps in Options.TLSDir. Clients trust CAFile; the keys
// are written with mode 0600.
const (
	CAFile        = "ca.pem"
	caKeyFile     = "ca-key.pem"
	serverFile    = "server.pem"
	serverKeyFile = "server-key.pem"
)

// serverNames are the names the server certificate is issued for: the
// loopback names a client on the same machine dials.
var serverNames = []string{"localhost", "127.0.0.1", "::1"}

const (
	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 365 * 24 * time.Hour
	// renewBefore is how close to its end a stored server certificate is
	// replaced rather than reused.
	renewBefore = 7 * 24 * time.Hour
)

// tlsMaterial is the CA devbus issues itself and the server certificate
// it signed.
type tlsMaterial struct {
	caPEM  []byte
	ca     *x509.Certificate
	caKey  crypto.Signer
	server tls.Certificate
}

// loadOrCreateTLS reads the CA and server certificate from dir, creating
// what is missing; an empty dir keeps everything in memory. A stored
// server certificate is reused while it is signed by the CA, names every
// loopback name and has more than renewBefore left.
func loadOrCreateTLS(dir string, now time.Time) (*tlsMaterial, error) {
	m := &tlsMaterial{}
	if err := m.loadOrCreateCA(dir, now); err != nil {
		return nil, err
	}
	if dir != "" {
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, serverFile), filepath.Join(dir, serverKeyFile))
		if err == nil && m.serverUsable(cert, now) {
			m.server = cert
			return m, nil
		}
	}
	certPEM, keyPEM, err := m.issueServer(now)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := writeFile(filepath.Join(dir, serverKeyFile), keyPEM, 0o600); err != nil {
			return nil, err
		}
		if err := writeFile(filepath.Join(dir, serverFile), certPEM, 0o644); err != nil {
			return nil, err
		}
	}
	m.server, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load the server certificate just issued: %w", err)
	}
	return m, nil
}

func (m *tlsMaterial) loadOrCreateCA(dir string, now time.Time) error {
	if dir != "" {
		// Readable by all: the agent may run as another account and must
		// read ca.pem; the keys themselves are 0600.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create TLS directory %s: %w", dir, err)
		}
		certPEM, errC := os.ReadFile(filepath.Join(dir, CAFile))
		keyPEM, errK := os.ReadFile(filepath.Join(dir, caKeyFile))
		switch {
		case errC == nil && errK == nil:
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				return fmt.Errorf("read the CA in %s: %w; delete %s and %s to have devbus issue a new one", dir, err, CAFile, caKeyFile)
			}
			ca, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				return fmt.Errorf("read the CA in %s: %w", dir, err)
			}
			signer, ok := pair.PrivateKey.(crypto.Signer)
			if !ok || !ca.IsCA {
				return fmt.Errorf("%s in %s is not a CA certificate with its key; delete it and %s to have devbus issue a new one", CAFile, dir, caKeyFile)
			}
			if now.After(ca.NotAfter) {
				return fmt.Errorf("the CA in %s expired on %s; delete %s and %s to have devbus issue a new one", dir, ca.NotAfter.UTC().Format(time.DateOnly), CAFile, caKeyFile)
			}
			m.caPEM, m.ca, m.caKey = certPEM, ca, signer
			return nil
		case errors.Is(errC, fs.ErrNotExist) && errors.Is(errK, fs.ErrNotExist):
		case errC != nil && !errors.Is(errC, fs.ErrNotExist):
			return fmt.Errorf("read the CA in %s: %w", dir, errC)
		case errK != nil && !errors.Is(errK, fs.ErrNotExist):
			return fmt.Errorf("read the CA key in %s: %w", dir, errK)
		default:
			return fmt.Errorf("%s has only one of %s and %s; delete it to have devbus issue a new CA", dir, CAFile, caKeyFile)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate the CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "devbus local CA", Organization: []string{"wbagent devbus"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("issue the CA certificate: %w", err)
	}
	m.ca, _ = x509.ParseCertificate(der)
	m.caKey = key
	m.caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if dir != "" {
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("encode the CA key: %w", err)
		}
		if err := writeFile(filepath.Join(dir, caKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return err
		}
		if err := writeFile(filepath.Join(dir, CAFile), m.caPEM, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// serverUsable reports whether a stored server certificate can be reused.
func (m *tlsMaterial) serverUsable(cert tls.Certificate, now time.Time) bool {
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil || now.Add(renewBefore).After(leaf.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	pool.AddCert(m.ca)
	for _, name := range serverNames {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			return false
		}
	}
	return true
}

// issueServer signs a server certificate for the loopback names.
func (m *tlsMaterial) issueServer(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate the server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"wbagent devbus"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, key.Public(), m.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("issue the server certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encode the server key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), nil
}

// config is the server side TLS configuration: TLS 1.2 at least, as
// Service Bus requires.
func (m *tlsMaterial) config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{m.server}}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// writeFile writes through a temporary file, so a reader never sees half
// a certificate.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// peekedConn is a connection whose first bytes were read to tell AMQP
// from HTTP; Read returns them again.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// sniffTLS completes the TLS handshake of a connection to the TLS
// listener and hands it to the broker when it starts with the AMQP
// protocol header, or to the HTTP server (the Entra ID stand-in) when it
// does not.
func (s *Server) sniffTLS(raw net.Conn) {
	defer s.wg.Done()
	defer s.unpend(raw)
	tc := tls.Server(raw, s.tlsConf)
	_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
	br := bufio.NewReaderSize(tc, 64<<10)
	head, err := br.Peek(4)
	_ = tc.SetDeadline(time.Time{})
	if err != nil {
		s.log.Debug("TLS connection ended before its first bytes", zap.Error(err))
		_ = tc.Close()
		return
	}
	nc := &peekedConn{Conn: tc, r: br}
	if string(head) == "AMQP" {
		if c := s.addConn(nc); c != nil {
			go c.serve()
		}
		return
	}
	s.httpConns.deliver(nc)
}

// pend records a connection that is not yet a broker or HTTP connection,
// so that Close can end it; it reports false when the server is closed.
func (s *Server) pend(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.pending[nc] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *Server) unpend(nc net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, nc)
}

// connQueue is a net.Listener fed with connections already accepted (and
// sniffed) elsewhere, for http.Server.Serve.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{}), addr: addr}
}

// deliver hands nc to Accept, or closes it once the queue is closed.
func (q *connQueue) deliver(nc net.Conn) {
	select {
	case q.ch <- nc:
	case <-q.done:
		_ = nc.Close()
	}
}

func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case nc := <-q.ch:
		return nc, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

func (q *connQueue) Addr() net.Addr { return q.addr }
