package directory

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/config"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

const dcName = "dc1.corp.example.test"

// redirect is an Options.Dial that sends addr to the test server at to,
// so a URL can name a port (636) the test does not own.
func redirect(to string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, to)
	}
}

// openTLS connects to u with settings ts the way the agent does (no bind)
// and returns the error, or nil after a verified handshake.
func openTLS(t *testing.T, u string, ts TLS, dial func(context.Context, string, string) (net.Conn, error)) error {
	t.Helper()
	srv, err := parseServer(u, ts.StartTLS)
	if err != nil {
		t.Fatal(err)
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	o := &Options{DialTimeout: 10 * time.Second, Dial: dial, Now: time.Now}
	d := &dialer{opts: o, domain: &Domain{Name: "corp.example.test", TLS: ts}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := d.open(ctx, srv)
	if err == nil {
		conn.Close()
	}
	return err
}

// wantTLSError fails unless err is a TLSError of cause whose message holds
// every word of words.
func wantTLSError(t *testing.T, err error, cause string, words ...string) *TLSError {
	t.Helper()
	var te *TLSError
	if !errors.As(err, &te) {
		t.Fatalf("want a TLS error (%s), got %v", cause, err)
	}
	if te.Cause != cause {
		t.Fatalf("cause %q, want %q: %v", te.Cause, cause, te)
	}
	for _, w := range words {
		if !strings.Contains(te.Error(), w) {
			t.Fatalf("message lacks %q: %v", w, te)
		}
	}
	return te
}

func TestTLSSANCertificate(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	addr := testbed.ServeTLS(t, ca.issue(t, leafSpec{cn: dcName, dnsNames: []string{dcName}}))
	caFile := writePEM(t, "ca.pem", ca.cert)
	if err := openTLS(t, "ldaps://"+addr, TLS{CAFile: caFile, ServerName: dcName}, nil); err != nil {
		t.Fatalf("SAN certificate refused: %v", err)
	}
	if err := openTLS(t, "ldaps://"+addr, TLS{CAFile: caFile, ServerName: "DC1.Corp.Example.Test."}, nil); err != nil {
		t.Fatalf("name in other case with trailing dot refused: %v", err)
	}
}

// Samba's own certificate: the host only in the CN, with a positive or a
// negative serial. Both pass with the right CA file and fail clearly with a
// wrong one.
func TestTLSCNOnlyCertificates(t *testing.T) {
	for _, negative := range []bool{false, true} {
		name := map[bool]string{false: "positive serial", true: "negative serial"}[negative]
		t.Run(name, func(t *testing.T) {
			ca := newTestCA(t, "DC1.corp.example.test Samba CA")
			cert := ca.issue(t, leafSpec{cn: "DC1.corp.example.test", negative: negative})
			if got := cert.Leaf.SerialNumber.Sign() < 0; got != negative {
				t.Fatalf("serial %v: negative %v, want %v", cert.Leaf.SerialNumber, got, negative)
			}
			if hasSANExtension(cert.Leaf) {
				t.Fatal("test certificate has a SAN extension")
			}
			addr := testbed.ServeTLS(t, cert)
			if err := openTLS(t, "ldaps://"+addr, TLS{CAFile: writePEM(t, "ca.pem", ca.cert), ServerName: dcName}, nil); err != nil {
				t.Fatalf("CN-only certificate with its CA refused: %v", err)
			}
			// A CA re-created with the same name, as Samba does.
			again := newTestCA(t, "DC1.corp.example.test Samba CA")
			err := openTLS(t, "ldaps://"+addr, TLS{CAFile: writePEM(t, "again.pem", again.cert), ServerName: dcName}, nil)
			wantTLSError(t, err, CauseUnknownAuthority, "again.pem", "re-created with the same name", "tls.caFile")
			other := newTestCA(t, "Some Other CA")
			err = openTLS(t, "ldaps://"+addr, TLS{CAFile: writePEM(t, "other.pem", other.cert), ServerName: dcName}, nil)
			wantTLSError(t, err, CauseUnknownAuthority, "DC1.corp.example.test Samba CA", "Some Other CA", "tls.caFile", "other.pem")
		})
	}
}

func TestTLSRefusals(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	caFile := writePEM(t, "ca.pem", ca.cert)
	cases := []struct {
		name  string
		spec  leafSpec
		ts    TLS
		cause string
		words []string
	}{
		{"wrong CN", leafSpec{cn: "dc2.corp.example.test"}, TLS{CAFile: caFile, ServerName: dcName},
			CauseNameMismatch, []string{"CN dc2.corp.example.test (no subjectAltName)", "not " + dcName, "tls.serverName"}},
		{"untrusted chain", leafSpec{cn: dcName}, TLS{ServerName: dcName},
			CauseUnknownAuthority, []string{"Corp Root CA", "system roots", "tls.caFile"}},
		{"expired", leafSpec{cn: dcName, notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-24 * time.Hour)},
			TLS{CAFile: caFile, ServerName: dcName}, CauseExpired, []string{"expired on", "clock reads", "renew"}},
		{"not yet valid", leafSpec{cn: dcName, notBefore: time.Now().Add(2 * time.Hour)},
			TLS{CAFile: caFile, ServerName: dcName}, CauseNotYetValid, []string{"not valid before", "clock reads", "NTP"}},
		{"SANs win over a matching CN", leafSpec{cn: dcName, dnsNames: []string{"other.corp.example.test"}},
			TLS{CAFile: caFile, ServerName: dcName}, CauseNameMismatch, []string{"other.corp.example.test", "not " + dcName}},
		{"partial wildcard CN", leafSpec{cn: "dc*.corp.example.test"}, TLS{CAFile: caFile, ServerName: dcName},
			CauseNameMismatch, []string{"dc*.corp.example.test"}},
		{"wildcard CN one label too high", leafSpec{cn: "*.example.test"}, TLS{CAFile: caFile, ServerName: dcName},
			CauseNameMismatch, []string{"*.example.test"}},
		{"address against a CN", leafSpec{cn: "127.0.0.1"}, TLS{CAFile: caFile},
			CauseNameMismatch, []string{"never matched to an IP address"}},
		{"SHA-1 signature", leafSpec{cn: dcName, sigAlg: x509.ECDSAWithSHA1}, TLS{CAFile: caFile, ServerName: dcName},
			CauseInsecureAlgorithm, []string{"ECDSA-SHA1", "SHA-256", "tls certfile"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := testbed.ServeTLS(t, ca.issue(t, c.spec))
			wantTLSError(t, openTLS(t, "ldaps://"+addr, c.ts, nil), c.cause, c.words...)
		})
	}
	t.Run("wildcard CN in the left-most label", func(t *testing.T) {
		addr := testbed.ServeTLS(t, ca.issue(t, leafSpec{cn: "*.corp.example.test"}))
		if err := openTLS(t, "ldaps://"+addr, TLS{CAFile: caFile, ServerName: dcName}, nil); err != nil {
			t.Fatalf("*.corp.example.test for %s refused: %v", dcName, err)
		}
	})
}

func TestCNMatches(t *testing.T) {
	for _, c := range []struct {
		cn, host string
		want     bool
	}{
		{"dc1.corp.example.test", "dc1.corp.example.test", true},
		{"DC1.Corp.Example.Test", "dc1.corp.example.test", true},
		{"dc1.corp.example.test.", "dc1.corp.example.test", true},
		{"dc1.corp.example.test", "dc1.corp.example.tes", false},
		{"dc1", "dc1.corp.example.test", false},
		{"*.corp.example.test", "dc1.corp.example.test", true},
		{"*.corp.example.test", "a.dc1.corp.example.test", false},
		{"*.corp.example.test", "corp.example.test", false},
		{"*.test", "corp.test", false},
		{"d*.corp.example.test", "dc1.corp.example.test", false},
		{"dc1.*.example.test", "dc1.corp.example.test", false},
		{"**.corp.example.test", "dc1.corp.example.test", false},
		{"", "", false},
	} {
		if got := cnMatches(c.cn, c.host); got != c.want {
			t.Errorf("cnMatches(%q, %q) = %v, want %v", c.cn, c.host, got, c.want)
		}
	}
}

func TestTLSPins(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	cert := ca.issue(t, leafSpec{cn: "DC1.corp.example.test", negative: true})
	addr := testbed.ServeTLS(t, cert)
	leafPin, caPin := PinSHA256(cert.Leaf), PinSHA256(ca.cert)
	// A chain that carries its CA, as many AD CS DCs send it.
	chained := cert
	chained.Certificate = append([][]byte{cert.Certificate[0]}, ca.cert.Raw)
	chainAddr := testbed.ServeTLS(t, chained)

	if err := openTLS(t, "ldaps://"+addr, TLS{PinSHA256: []string{leafPin}}, nil); err != nil {
		t.Fatalf("right leaf pin without a CA file refused: %v", err)
	}
	if err := openTLS(t, "ldaps://"+addr, TLS{PinSHA256: []string{"sha256//" + leafPin}}, nil); err != nil {
		t.Fatalf("leaf pin in curl's sha256// form refused: %v", err)
	}
	if err := openTLS(t, "ldaps://"+chainAddr, TLS{PinSHA256: []string{caPin}, ServerName: dcName}, nil); err != nil {
		t.Fatalf("right CA pin refused: %v", err)
	}
	wantTLSError(t, openTLS(t, "ldaps://"+chainAddr, TLS{PinSHA256: []string{caPin}, ServerName: "other.corp.example.test"}, nil),
		CauseNameMismatch, "other.corp.example.test")
	wrong := base64.StdEncoding.EncodeToString(make([]byte, 32))
	wantTLSError(t, openTLS(t, "ldaps://"+chainAddr, TLS{PinSHA256: []string{wrong}, ServerName: dcName}, nil),
		CausePinMismatch, wrong, leafPin, caPin, "DC1.corp.example.test", "tls.pinSHA256")
	// With a CA file as well, both must hold.
	other := newTestCA(t, "Other CA")
	wantTLSError(t, openTLS(t, "ldaps://"+addr, TLS{PinSHA256: []string{leafPin}, CAFile: writePEM(t, "o.pem", other.cert)}, nil),
		CauseUnknownAuthority, "Other CA")
	if err := CheckPin("not-a-pin"); err == nil || !strings.Contains(err.Error(), "wbagent tls show") {
		t.Fatalf("CheckPin of garbage: %v", err)
	}
	if _, err := (Options{Domains: []Domain{{Name: "corp.example.test", Servers: []string{"ldaps://dc1"},
		TLS:  TLS{PinSHA256: []string{"abc"}},
		Bind: Bind{User: "u", Password: secret.FromString("p")}}},
		HistoryOnReset: HistoryAuto, Timeout: 20 * time.Second, PoolSize: 4,
		DialTimeout: config.DirectoryDialTimeout, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL}).withDefaults(); err == nil || !strings.Contains(err.Error(), "pinSHA256") {
		t.Fatalf("a malformed pin passed the options: %v", err)
	}
}

func TestCAFileDiagnosis(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	addr := testbed.ServeTLS(t, ca.issue(t, leafSpec{cn: dcName}))
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	der := write("ca.cer", ca.cert.Raw)
	if err := openTLS(t, "ldaps://"+addr, TLS{CAFile: der, ServerName: dcName}, nil); err != nil {
		t.Fatalf("DER CA file (certutil -ca.cert) refused: %v", err)
	}
	bad := "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIBATAKBggqhkjOPQQDAjAUMRIwEAYDVQQDEwlicm9rZW4g\n-----END CERTIFICATE-----\n"
	good, _ := os.ReadFile(writePEM(t, "good.pem", ca.cert))
	cases := []struct {
		name, path string
		words      []string
	}{
		{"missing", filepath.Join(dir, "nope.pem"), []string{"read CA file", "nope.pem", "no such file"}},
		{"empty", write("empty.pem", []byte("\n \n")), []string{"empty.pem is empty", "--save-ca"}},
		{"no certificate", write("text.pem", []byte("hello\n")), []string{"holds no certificate", "BEGIN CERTIFICATE"}},
		{"second certificate broken", write("mixed.pem", append(good, bad...)), []string{fmt.Sprintf("certificate 2 (line %d,", strings.Count(string(good), "\n")+1), "does not parse", "x509:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := openTLS(t, "ldaps://"+addr, TLS{CAFile: c.path, ServerName: dcName}, nil)
			te := wantTLSError(t, err, CauseCAFile, c.words...)
			if out := Classify(err); out.Code != wire.CodeDirectoryUnavailable || !out.Transient {
				t.Fatalf("a bad CA file classifies as %s (transient %v); want directory_unavailable, kept for redelivery", out.Code, out.Transient)
			}
			if strings.Contains(te.Msg, "no PEM certificate") && c.name == "second certificate broken" {
				t.Fatalf("a file with a certificate reported as having none: %v", te)
			}
		})
	}
}

// Without the //go:debug setting (another build, or GODEBUG overriding
// it) a negative serial is named as the cause, not as a missing PEM
// certificate or a port without TLS.
func TestNegativeSerialWithoutSetting(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	cert := ca.issue(t, leafSpec{cn: dcName, negative: true})
	addr := testbed.ServeTLS(t, cert)
	caFile := writePEM(t, "ca.pem", ca.cert)
	neg := writePEM(t, "neg.pem", cert.Leaf)
	t.Setenv("GODEBUG", "x509negativeserial=0")
	if _, err := x509.ParseCertificate(cert.Leaf.Raw); err == nil {
		t.Skip("GODEBUG=x509negativeserial=0 did not take effect at run time")
	}
	wantTLSError(t, openTLS(t, "ldaps://"+addr, TLS{CAFile: caFile, ServerName: dcName}, nil),
		CauseNegativeSerial, "negative serial number")
	wantTLSError(t, openTLS(t, "ldaps://"+addr, TLS{CAFile: neg, ServerName: dcName}, nil),
		CauseNegativeSerial, "neg.pem", "certificate 1", "negative serial number")
}

// ldapMessage is an LDAP response: message ID 1, an ExtendedResponse with
// result code and diagnostic message.
func ldapMessage(code int64, diag string) []byte {
	p := ber.Encode(ber.ClassUniversal, ber.TypeConstructed, ber.TagSequence, nil, "LDAP Response")
	p.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, int64(1), "MessageID"))
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldap.ApplicationExtendedResponse, nil, "Extended Response")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, diag, "diagnosticMessage"))
	p.AppendChild(r)
	return p.Bytes()
}

func TestNotTLS(t *testing.T) {
	addr := rawServer(t, ldapMessage(2, "not TLS"))
	wantTLSError(t, openTLS(t, "ldaps://"+addr, TLS{ServerName: dcName}, nil),
		CauseNotTLS, "does not speak TLS", "plain LDAP port", "tls.startTLS")
	// A server that closes at once did speak: it sent nothing. That is not
	// reported as "no TLS".
	closing := rawServer(t, nil)
	te := wantTLSError(t, openTLS(t, "ldaps://"+closing, TLS{ServerName: dcName}, nil), CauseHandshake, "closed the connection")
	if strings.Contains(te.Msg, "does not speak TLS") {
		t.Fatalf("closed connection reported as no TLS: %v", te)
	}
}

func TestStartTLSRefused(t *testing.T) {
	addr := rawServer(t, ldapMessage(ldap.LDAPResultUnavailable, "no certificate configured"))
	wantTLSError(t, openTLS(t, "ldap://"+addr, TLS{ServerName: dcName, StartTLS: true}, nil),
		CauseStartTLSRefused, "refused StartTLS", "Unavailable", "no certificate configured", "ldaps://")
}

func TestStartTLSSuccess(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	cert := ca.issue(t, leafSpec{cn: dcName})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := ber.ReadPacket(c); err != nil {
			return
		}
		_, _ = c.Write(ldapMessage(0, ""))
		tc := tlsServerConn(c, cert)
		_ = tc.Handshake()
		_, _ = tc.Read(make([]byte, 1))
	}()
	if err := openTLS(t, "ldap://"+ln.Addr().String(), TLS{CAFile: writePEM(t, "ca.pem", ca.cert), ServerName: dcName, StartTLS: true}, nil); err != nil {
		t.Fatalf("StartTLS with a CN-only certificate: %v", err)
	}
}

// ldap://host:636 with StartTLS says that 636 is the LDAPS port, in the
// error (the log and /readyz) and in check's row and fix, not that the DC
// refused StartTLS.
func TestStartTLSOnLDAPSPort(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	addr := testbed.ServeTLS(t, ca.issue(t, leafSpec{cn: dcName}))
	ts := TLS{ServerName: dcName, StartTLS: true, CAFile: writePEM(t, "ca.pem", ca.cert)}
	words := []string{"636 is the LDAPS port", "ldaps://127.0.0.1:636", "ldap://127.0.0.1:389 with StartTLS"}
	te := wantTLSError(t, openTLS(t, "ldap://127.0.0.1:636", ts, redirect(addr)), CauseLDAPSPort, words...)
	if strings.Contains(te.Error(), "refused StartTLS") {
		t.Fatalf("reported as a refusal: %v", te)
	}

	core, logs := observer.New(zap.DebugLevel)
	opts := Options{
		Domains: []Domain{{Name: "corp.example.test", Servers: []string{"ldap://127.0.0.1:636"}, TLS: ts,
			Bind: Bind{User: "svc@corp.example.test", Password: secret.FromString("unused-Passw0rd")}}},
		Scope: Scope{IncludeOUs: []string{"OU=Staff,DC=corp,DC=example,DC=test"}},
		Dial:  redirect(addr), Timeout: 20 * time.Second, DialTimeout: 10 * time.Second,
		HistoryOnReset: HistoryAuto, PoolSize: 4, IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL,
	}
	d, err := New(opts, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	err = d.Ready(context.Background())
	for _, w := range words {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Fatalf("Ready (the /readyz detail) lacks %q: %v", w, err)
		}
	}
	logged := false
	for _, e := range logs.All() {
		if msg, _ := e.ContextMap()["error"].(string); strings.Contains(msg, words[0]) {
			logged = true
		}
	}
	if !logged {
		t.Fatalf("no log line says %q: %v", words[0], logs.All())
	}
	row := tlsRow(t, Check(context.Background(), opts))
	if row.OK || !strings.Contains(row.Detail, words[0]) || !strings.Contains(row.Fix, words[1]) || !strings.Contains(row.Fix, words[2]) {
		t.Fatalf("check row: %+v", row)
	}
}

func tlsRow(t *testing.T, rows []CheckRow) CheckRow {
	t.Helper()
	for _, r := range rows {
		if strings.Contains(r.Name, ": TLS ") {
			return r
		}
	}
	t.Fatalf("no TLS row in %+v", rows)
	return CheckRow{}
}

// check passes a DC with a legacy certificate with a WARN that says what is
// legacy and how to reissue it, and fails one it cannot trust with the
// diagnosis as row and fix.
func TestCheckTLSRows(t *testing.T) {
	ca := newTestCA(t, "Samba CA")
	addr := testbed.ServeTLS(t, ca.issue(t, leafSpec{cn: "DC1.corp.example.test", negative: true, rsaBits: 1024}))
	opts := func(ts TLS) Options {
		return Options{Domains: []Domain{{Name: "corp.example.test", Servers: []string{"ldaps://" + addr}, TLS: ts,
			Bind: Bind{User: "svc@corp.example.test", Password: secret.FromString("unused-Passw0rd")}}},
			Scope:   Scope{IncludeOUs: []string{"OU=Staff,DC=corp,DC=example,DC=test"}},
			Timeout: 20 * time.Second, DialTimeout: 10 * time.Second, HistoryOnReset: HistoryAuto, PoolSize: 4,
			IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL}
	}
	row := tlsRow(t, Check(context.Background(), opts(TLS{CAFile: writePEM(t, "ca.pem", ca.cert), ServerName: dcName})))
	if !row.OK || !row.Warn {
		t.Fatalf("legacy certificate: want a passing WARN row, got %+v", row)
	}
	for _, w := range []string{"subject CN (no subjectAltName)", "negative serial", "RSA-1024"} {
		if !strings.Contains(row.Detail, w) {
			t.Fatalf("WARN detail lacks %q: %s", w, row.Detail)
		}
	}
	for _, w := range []string{"tls keyfile", "tls certfile", "Domain Controller Authentication", "Kerberos Authentication"} {
		if !strings.Contains(row.Fix, w) {
			t.Fatalf("WARN fix lacks %q: %s", w, row.Fix)
		}
	}
	row = tlsRow(t, Check(context.Background(), opts(TLS{ServerName: dcName})))
	if row.OK || !strings.Contains(row.Detail, "issued by \"CN=Samba CA") || !strings.Contains(row.Fix, "tls.caFile") {
		t.Fatalf("untrusted certificate: %+v", row)
	}
}

func TestLegacyNotes(t *testing.T) {
	ca := newTestCA(t, "Corp Root CA")
	modern := ca.issue(t, leafSpec{cn: dcName, dnsNames: []string{dcName}})
	if n := legacyNotes([]*x509.Certificate{modern.Leaf, ca.cert}); len(n) != 0 {
		t.Fatalf("modern certificate has legacy notes %v", n)
	}
}
