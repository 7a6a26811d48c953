package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/directory"
	"wbagent/internal/lab/testbed"
)

// chainServer serves TLS on loopback with a leaf for name signed by a fresh
// CA, presenting leaf and CA when withCA; it returns the address and the CA.
func chainServer(t *testing.T, name string, withCA bool) (string, *x509.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Show Test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), DNSNames: []string{name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	chain := [][]byte{der}
	if withCA {
		chain = append(chain, caDER)
	}
	return testbed.ServeTLS(t, tls.Certificate{Certificate: chain, PrivateKey: key}), ca
}

func runTLSShow(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := runEnv(context.Background(), &cmdEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &out, getenv: func(string) string { return "" }},
		append([]string{"tls", "show", "--config", systemRootsConfig(t)}, args...))
	if err != nil {
		out.WriteString("wbagent: " + err.Error() + "\n")
	}
	return out.String(), err
}

// systemRootsConfig is a one-domain config whose tls section trusts the
// system roots; tls show falls back to it for any URL.
func systemRootsConfig(t *testing.T) string {
	t.Helper()
	return writeRunConfig(t, "127.0.0.1:0")
}

func TestTLSShowSavesTheCA(t *testing.T) {
	const name = "dc1.corp.example.test"
	addr, ca := chainServer(t, name, true)
	url := "ldaps://" + addr
	out, err := runTLSShow(t, url, "--server-name", name)
	if exitCode(err, &bytes.Buffer{}) != exitNegative || !strings.Contains(out, "FAILS") || !strings.Contains(out, "Show Test CA") {
		t.Fatalf("an untrusted chain: want exit %d and FAILS naming the CA, got %v\n%s", exitNegative, err, out)
	}
	for _, w := range []string{"presented 2 certificate(s)", "names:     " + name, "serial:    2", "key:       ECDSA P-256", "pin:       " + directory.PinSHA256(ca), "tls: {pinSHA256: [\""} {
		if !strings.Contains(out, w) {
			t.Fatalf("tls show output lacks %q:\n%s", w, out)
		}
	}
	file := filepath.Join(t.TempDir(), "ca.pem")
	out, err = runTLSShow(t, "--save-ca", file, url, "--server-name", name)
	if err != nil || !strings.Contains(out, "wrote "+file) || !strings.Contains(out, "the DC verifies") {
		t.Fatalf("--save-ca: %v\n%s", err, out)
	}
	raw, _ := os.ReadFile(file)
	b, _ := pem.Decode(raw)
	if b == nil || !bytes.Equal(b.Bytes, ca.Raw) {
		t.Fatalf("%s does not hold the issuing CA", file)
	}
	if out, err := runTLSShow(t, "--save-ca", file, url, "--server-name", name); err == nil || !strings.Contains(out, "never overwrites") {
		t.Fatalf("--save-ca over an existing file: %v\n%s", err, out)
	}
	out, err = runTLSShow(t, "--ca-file", file, url, "--server-name", name)
	if err != nil || !strings.Contains(out, "  OK\n") {
		t.Fatalf("verify with the saved CA: %v\n%s", err, out)
	}

	// A DC that sends only its own certificate: where to get the CA, and
	// the pin to use instead.
	leafOnly, _ := chainServer(t, name, false)
	out, err = runTLSShow(t, "--save-ca", filepath.Join(t.TempDir(), "x.pem"), "ldaps://"+leafOnly, "--server-name", name)
	if err == nil || !strings.Contains(out, "sent only its own certificate") || !strings.Contains(out, "tls.pinSHA256") {
		t.Fatalf("--save-ca without a CA in the chain: %v\n%s", err, out)
	}
	if _, err := runTLSShow(t); err == nil || !strings.Contains(err.Error(), "give the DC's URL") {
		t.Fatalf("no URL: %v", err)
	}
}
