package testbed

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"wbagent/internal/secret"
)

// secureLines are where the TLS and WebSocket connection strings go, in
// the order the devbus command prints them after the plain one.
func (b *Bus) secureLines() []**secret.Secret {
	var out []**secret.Secret
	if b.opts.TLS {
		out = append(out, &b.tlsConn)
	}
	if b.opts.WebSockets {
		out = append(out, &b.wsConn)
	}
	return out
}

// secureArgs are the devbus command's TLS, WebSocket and Entra flags;
// the Entra clients' credentials are written to files in Dir.
func (b *Bus) secureArgs(tlsListen, wsListen string) ([]string, error) {
	o := b.opts
	if !o.TLS && !o.WebSockets {
		if o.Entra != nil {
			return nil, errors.New("BusOptions.Entra needs TLS or WebSockets")
		}
		return nil, nil
	}
	args := []string{"--tls-dir", filepath.Dir(b.caFile)}
	if o.TLS {
		args = append(args, "--tls-listen", tlsListen)
	}
	if o.WebSockets {
		args = append(args, "--ws-listen", wsListen)
	}
	if o.Entra == nil {
		return args, nil
	}
	args = append(args, "--entra-tenant", o.Entra.Tenant)
	if o.Entra.TokenLifetime > 0 {
		args = append(args, "--entra-token-lifetime", o.Entra.TokenLifetime.String())
	}
	for _, c := range o.Entra.Clients {
		var spec string
		switch {
		case c.Secret != nil:
			f := filepath.Join(o.Dir, "entra-"+c.ID+".secret")
			if err := os.WriteFile(f, c.Secret.Bytes(), 0o600); err != nil {
				return nil, fmt.Errorf("write the secret of entra client %s: %w", c.ID, err)
			}
			spec = c.ID + "=secret:" + f
		case c.Certificate != nil:
			f := filepath.Join(o.Dir, "entra-"+c.ID+".pem")
			if err := os.WriteFile(f, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate.Raw}), 0o644); err != nil {
				return nil, fmt.Errorf("write the certificate of entra client %s: %w", c.ID, err)
			}
			spec = c.ID + "=cert:" + f
		default:
			return nil, fmt.Errorf("entra client %s has neither a secret nor a certificate", c.ID)
		}
		if c.Listen {
			spec += ",listen"
		}
		if c.Send {
			spec += ",send"
		}
		args = append(args, "--entra-client", spec)
	}
	return args, nil
}

func allConnectionStrings(lines []string) bool {
	for _, l := range lines {
		if !strings.HasPrefix(l, "Endpoint=sb://") {
			return false
		}
	}
	return len(lines) > 0
}

// connPort extracts PORT from a connection string's Endpoint.
func connPort(cs string) string {
	_, port, _ := net.SplitHostPort(connHost(cs))
	return port
}

// TLSConnectionString is the connection string of the TLS listener
// (Endpoint=sb://localhost:PORT/, no UseDevelopmentEmulator); nil
// without BusOptions.TLS.
func (b *Bus) TLSConnectionString() *secret.Secret { return b.tlsConn }

// WebSocketConnectionString is the connection string of the WebSocket
// listener; nil without BusOptions.WebSockets.
func (b *Bus) WebSocketConnectionString() *secret.Secret { return b.wsConn }

// CAFile is the path of the CA clients trust for the TLS listeners;
// empty without TLS listeners or without Dir.
func (b *Bus) CAFile() string { return b.caFile }

// CACertPEM is the CA clients trust for the TLS listeners; nil without
// them.
func (b *Bus) CACertPEM() ([]byte, error) {
	if b.caPEM != nil {
		return b.caPEM, nil
	}
	if b.caFile == "" {
		return nil, nil
	}
	pemCA, err := os.ReadFile(b.caFile)
	if err != nil {
		return nil, fmt.Errorf("read the devbus CA: %w", err)
	}
	return pemCA, nil
}

// CertPool holds CACertPEM for tls.Config.RootCAs.
func (b *Bus) CertPool() (*x509.CertPool, error) {
	pemCA, err := b.CACertPEM()
	if err != nil || pemCA == nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemCA) {
		return nil, errors.New("the devbus CA file holds no certificate")
	}
	return pool, nil
}

// AuthorityHost is the Entra ID stand-in's URL for azidentity's
// ActiveDirectoryAuthorityHost (https://localhost:PORT/ of the TLS
// listener, else of the WebSocket one); empty without BusOptions.Entra.
func (b *Bus) AuthorityHost() string {
	if b.opts.Entra == nil {
		return ""
	}
	cs := b.tlsConn
	if cs == nil {
		cs = b.wsConn
	}
	if cs == nil {
		return ""
	}
	return "https://localhost:" + connPort(cs.Reveal()) + "/"
}

// EntraClientCert creates a self-signed RSA certificate for an app
// registration, valid from notBefore to notAfter (in the past for an
// expired one), and writes it with its private key to path (PEM,
// certificate first, mode 0600): the form azidentity.ParseCertificates
// reads. Register the returned certificate as EntraClient.Certificate.
func EntraClientCert(path, commonName string, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate the client key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 100))
	if err != nil {
		return nil, fmt.Errorf("client certificate serial: %w", err)
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: commonName},
		NotBefore: notBefore, NotAfter: notAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("issue the client certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the client key: %w", err)
	}
	out := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return nil, fmt.Errorf("write the client certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}
