package directory

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/config"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// sambaCertDC is a DC serving the certificate Samba generated for itself
// (CN only, a random serial that is often negative), set up like the
// package fixture: OU=Staff delegated to svc-wb.
type sambaCertDC struct {
	dc    *sambadc.DC
	staff string
	svcPw *secret.Secret
	leaf  *x509.Certificate
}

func startSambaCertDC(t *testing.T) *sambaCertDC {
	t.Helper()
	needDC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc := sambadc.StartTest(ctx, t, sambadc.Options{SambaCert: true})
	s := &sambaCertDC{dc: dc, svcPw: secret.FromString("Svc-Writeback-Passw0rd")}
	if err := dc.SetPasswordPolicy(ctx, sambadc.PasswordPolicy{MinAge: sambadc.Ptr(time.Duration(0)), LockoutThreshold: sambadc.Ptr(3)}); err != nil {
		t.Fatal(err)
	}
	staff, err := dc.StaffWithService(ctx, "svc-wb", s.svcPw)
	if err != nil {
		t.Fatal(err)
	}
	s.staff = staff
	raw, err := os.ReadFile(filepath.Join(filepath.Dir(dc.CACertPath()), "cert.pem"))
	if err != nil {
		t.Fatalf("Samba wrote no certificate: %v", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		t.Fatal("Samba's cert.pem holds no PEM block")
	}
	if s.leaf, err = x509.ParseCertificate(b.Bytes); err != nil {
		t.Fatal(err)
	}
	if hasSANExtension(s.leaf) {
		t.Fatal("the DC serves a certificate with subjectAltName: not the one Samba makes itself")
	}
	t.Logf("Samba's own certificate: subject %s, serial %v", s.leaf.Subject, s.leaf.SerialNumber)
	return s
}

func (s *sambaCertDC) options(ts TLS, servers ...string) Options {
	if len(servers) == 0 {
		servers = []string{s.dc.LDAPSURL()}
	}
	return Options{
		Domains: []Domain{{
			Name: s.dc.Realm(), NetBIOS: s.dc.NetBIOS(), BaseDN: s.dc.BaseDN(), Servers: servers, TLS: ts,
			Bind: Bind{Method: BindSimple, User: "svc-wb@" + s.dc.Realm(), Password: s.svcPw},
		}},
		Scope:   Scope{IncludeOUs: []string{s.staff}, ProtectAdminCount: true},
		Timeout: 20 * time.Second, DialTimeout: 10 * time.Second, HistoryOnReset: HistoryAuto, PoolSize: 4,
		IdleCheck: config.DirectoryIdleCheck, DiscoverTTL: config.DirectoryDiscoverTTL,
	}
}

func (s *sambaCertDC) wantBind(t *testing.T, upn, pw, want string) {
	t.Helper()
	code, err := s.dc.BindCode(context.Background(), upn, secret.FromString(pw))
	if err != nil || code != want {
		t.Fatalf("bind as %s: code %q err %v, want %q", upn, code, err, want)
	}
}

// Against the certificate Samba made for itself, with its ca.pem as the CA
// file: the directory becomes ready, and a reset, a change and an unlock
// each reach the DC (the user binds with the new password), over LDAPS and
// over StartTLS.
func TestSambaOwnCertificateRoundTrip(t *testing.T) {
	s := startSambaCertDC(t)
	ctx := context.Background()
	ts := TLS{CAFile: s.dc.CACertPath(), ServerName: s.dc.ServerName()}
	for _, mode := range []string{"ldaps", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			o := s.options(ts)
			if mode == "starttls" {
				o = s.options(TLS{CAFile: ts.CAFile, ServerName: ts.ServerName, StartTLS: true}, s.dc.LDAPURL())
			}
			d := newDir(t, o)
			if err := d.Ready(ctx); err != nil {
				t.Fatalf("Ready against Samba's own certificate: %v", err)
			}
			u, err := s.dc.CreateUser(ctx, sambadc.UserSpec{Name: "rt-" + mode, OU: s.staff, Password: secret.FromString(pw1)})
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
			s.wantBind(t, u.UPN, pw2, "")
			wantCode(t, apply(t, d, change(Target{UserPrincipalName: u.UPN}, pw2, pw3)), wire.CodeOK, "")
			s.wantBind(t, u.UPN, pw3, "")
			if err := s.dc.Lock(ctx, u.UPN, u.DN); err != nil {
				t.Fatal(err)
			}
			s.wantBind(t, u.UPN, pw3, "775")
			wantCode(t, apply(t, d, Change{Op: wire.OpUnlock, Target: Target{ObjectGUID: u.ObjectGUID}}), wire.CodeOK, "")
			s.wantBind(t, u.UPN, pw3, "")
		})
	}
}

// The same DC trusted by a pin instead of a CA file; a wrong pin, a wrong CA
// and the LDAPS port with StartTLS each fail with their own diagnosis, and
// check warns about the legacy certificate.
func TestSambaOwnCertificateTrust(t *testing.T) {
	s := startSambaCertDC(t)
	ctx := context.Background()
	pin := PinSHA256(s.leaf)
	if err := newDir(t, s.options(TLS{PinSHA256: []string{pin}})).Ready(ctx); err != nil {
		t.Fatalf("right pin without a CA file: %v", err)
	}
	wrong := base64.StdEncoding.EncodeToString(make([]byte, 32))
	err := newDir(t, s.options(TLS{PinSHA256: []string{wrong}, ServerName: s.dc.ServerName()})).Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), pin) || !strings.Contains(err.Error(), "tls.pinSHA256") {
		t.Fatalf("wrong pin: want the pin seen (%s) named, got %v", pin, err)
	}
	other := writePEM(t, "other.pem", newTestCA(t, "Not Samba CA").cert)
	err = newDir(t, s.options(TLS{CAFile: other, ServerName: s.dc.ServerName()})).Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "temporary autogenerated CA certificate") || !strings.Contains(err.Error(), "Not Samba CA") {
		t.Fatalf("wrong CA: want the issuer and the CA file's subject named, got %v", err)
	}
	ldapsPort := strings.Replace(s.dc.LDAPSURL(), "ldaps://", "ldap://", 1)
	err = newDir(t, s.options(TLS{CAFile: s.dc.CACertPath(), ServerName: s.dc.ServerName(), StartTLS: true}, ldapsPort)).Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "636 is the LDAPS port") || strings.Contains(err.Error(), "refused StartTLS") {
		t.Fatalf("ldap://…:636 with StartTLS: %v", err)
	}

	rows := Check(ctx, s.options(TLS{CAFile: s.dc.CACertPath(), ServerName: s.dc.ServerName()}))
	row := tlsRow(t, rows)
	if !row.OK || !row.Warn || !strings.Contains(row.Detail, "subject CN (no subjectAltName)") || !strings.Contains(row.Fix, "tls certfile") {
		t.Fatalf("check of Samba's own certificate: want a WARN naming the CN-only certificate, got %+v", row)
	}
	if s.leaf.SerialNumber.Sign() < 0 && !strings.Contains(row.Detail, "negative serial") {
		t.Fatalf("check does not name the negative serial: %+v", row)
	}
	for _, r := range rows {
		if !r.OK {
			t.Fatalf("check failed a row against Samba's own certificate: %+v", r)
		}
	}
}

// tls show's reading of the chain: the DC's pin, and what it verifies with.
func TestSambaOwnCertificateInspect(t *testing.T) {
	s := startSambaCertDC(t)
	in, err := Inspect(context.Background(), s.dc.LDAPSURL(), TLS{ServerName: s.dc.ServerName()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Chain) == 0 || PinSHA256(in.Chain[0]) != PinSHA256(s.leaf) {
		t.Fatalf("inspected chain is not the DC's certificate")
	}
	var te *TLSError
	if in.Verify == nil || !errors.As(in.Verify, &te) || te.Cause != CauseUnknownAuthority {
		t.Fatalf("with the system roots: want unknown authority, got %v", in.Verify)
	}
	if _, err := in.IssuingCA(); err == nil || !strings.Contains(err.Error(), "private/tls/ca.pem") {
		t.Fatalf("Samba sends no CA: want where to get it, got %v", err)
	}
	in, err = Inspect(context.Background(), s.dc.LDAPURL(), TLS{ServerName: s.dc.ServerName(), StartTLS: true, CAFile: s.dc.CACertPath()}, 10*time.Second)
	if err != nil || in.Verify != nil {
		t.Fatalf("StartTLS inspection with Samba's CA: %v %v", err, in.Verify)
	}
}
