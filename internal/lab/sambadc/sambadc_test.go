package sambadc

import (
	"context"
	"crypto/tls"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/secret"
)

func startDC(t *testing.T, opts Options) *DC {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: starts a Samba AD DC")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return StartTest(ctx, t, opts)
}

func TestDCLifecycle(t *testing.T) {
	dc := startDC(t, Options{})
	ctx := context.Background()

	ou, err := dc.CreateOU(ctx, "Staff", "")
	if err != nil {
		t.Fatal(err)
	}
	pw := secret.FromString("Pässwörd-✓-Ωmega-2026")
	u, err := dc.CreateUser(ctx, UserSpec{Name: "alice", OU: ou, Password: pw})
	if err != nil {
		t.Fatal(err)
	}
	if code, err := dc.BindCode(ctx, u.UPN, pw); err != nil || code != "" {
		t.Fatalf("bind as new user: code %q err %v", code, err)
	}
	if code, _ := dc.BindCode(ctx, u.UPN, secret.FromString("nope-Nope-1")); code != "52e" {
		t.Fatalf("bad password: code %q, want 52e", code)
	}
	e, err := dc.Entry(ctx, "<GUID="+u.ObjectGUID+">", "sAMAccountName")
	if err != nil || e.GetAttributeValue("sAMAccountName") != "alice" {
		t.Fatalf("read by GUID %s: %v %v", u.ObjectGUID, e, err)
	}

	// The certificate names the host and the address, checked for real.
	conn, err := tls.Dial("tcp", dc.IP()+":636", &tls.Config{RootCAs: dc.caPool, ServerName: dc.ServerName()})
	if err != nil {
		t.Fatalf("TLS to %s as %s: %v", dc.IP(), dc.ServerName(), err)
	}
	conn.Close()

	t.Run("delegate", func(t *testing.T) {
		svcPw := secret.FromString("Svc-Passw0rd-1")
		if _, err := dc.CreateUser(ctx, UserSpec{Name: "svc-wb", Password: svcPw}); err != nil {
			t.Fatal(err)
		}
		newPw := secret.FromString("New-Passw0rd-2")
		err := resetAs(dc, "svc-wb@"+dc.Realm(), svcPw, u.DN, newPw)
		if !ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
			t.Fatalf("reset before delegation: %v, want insufficient access", err)
		}
		if err := dc.Delegate(ctx, "svc-wb", ou); err != nil {
			t.Fatal(err)
		}
		if err := dc.Delegate(ctx, "svc-wb", ou); err != nil {
			t.Fatalf("second delegation: %v", err)
		}
		if err := resetAs(dc, "svc-wb@"+dc.Realm(), svcPw, u.DN, newPw); err != nil {
			t.Fatalf("reset after delegation: %v", err)
		}
		if code, err := dc.BindCode(ctx, u.UPN, newPw); err != nil || code != "" {
			t.Fatalf("bind with reset password: %q %v", code, err)
		}
		out, err := dc.SambaTool(ctx, "dsacl", "get", "--objectdn="+ou)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.ToLower(out), "00299570-246d-11d0-a768-00aa006e0529"); n != 1 {
			t.Fatalf("reset password ACE appears %d times after two runs:\n%s", n, out)
		}
	})

	t.Run("lock", func(t *testing.T) {
		if err := dc.SetPasswordPolicy(ctx, PasswordPolicy{LockoutThreshold: Ptr(3)}); err != nil {
			t.Fatal(err)
		}
		pw := secret.FromString("Lock-Passw0rd-1")
		v, err := dc.CreateUser(ctx, UserSpec{Name: "victim", OU: ou, Password: pw})
		if err != nil {
			t.Fatal(err)
		}
		if err := dc.Lock(ctx, v.UPN, v.DN); err != nil {
			t.Fatal(err)
		}
		if code, _ := dc.BindCode(ctx, v.UPN, pw); code != "775" {
			t.Fatalf("locked account bind: %q, want 775", code)
		}
	})

	t.Run("PSO", func(t *testing.T) {
		pso, err := dc.CreatePSO(ctx, PSO{Name: "long", Precedence: 3, MinLength: 20, Complexity: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := dc.ApplyPSO(ctx, pso, u.DN); err != nil {
			t.Fatal(err)
		}
		e, err := dc.Entry(ctx, u.DN, "msDS-ResultantPSO")
		if err != nil || !strings.EqualFold(e.GetAttributeValue("msDS-ResultantPSO"), pso) {
			t.Fatalf("resultant PSO of %s: %v %v", u.DN, e.GetAttributeValue("msDS-ResultantPSO"), err)
		}
	})

	t.Run("keytab", func(t *testing.T) {
		kt := filepath.Join(t.TempDir(), "svc.keytab")
		if err := dc.ExportKeytab(ctx, "alice@"+strings.ToUpper(dc.Realm()), kt); err != nil {
			t.Fatal(err)
		}
		if st, err := os.Stat(kt); err != nil || st.Size() == 0 {
			t.Fatalf("keytab: %v", err)
		}
		if _, err := exec.LookPath("kinit"); err == nil {
			cmd := exec.Command("kinit", "-k", "-t", kt, "alice@"+strings.ToUpper(dc.Realm()))
			cmd.Env = append(os.Environ(), "KRB5_CONFIG="+dc.Krb5ConfPath(), "KRB5CCNAME=FILE:"+filepath.Join(t.TempDir(), "cc"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("kinit with exported keytab against the DC's KDC: %v\n%s", err, out)
			}
		}
	})

	t.Run("kill and restart", func(t *testing.T) {
		dc.Kill()
		if dc.Running() {
			t.Fatal("still running after Kill")
		}
		if err := dc.Bind(ctx, u.UPN, pw); err == nil {
			t.Fatal("bind succeeded while the DC is down")
		}
		if err := dc.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := dc.Entry(ctx, u.DN, "cn"); err != nil {
			t.Fatalf("read after restart: %v", err)
		}
	})

	t.Run("proxy", func(t *testing.T) {
		p, err := NewProxy(ctx, dc.IP()+":636")
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		c, err := ldap.DialURL("ldaps://"+p.Addr(), ldap.DialWithTLSConfig(dc.TLSConfig()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Bind(dc.AdminUPN(), dc.AdminPassword().Reveal()); err != nil {
			t.Fatal(err)
		}
		p.Cut()
		c.SetTimeout(5 * time.Second)
		if _, err := c.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", nil, nil)); err == nil {
			t.Fatal("search through a cut proxy succeeded")
		}
	})
}

func TestTwoDCsSideBySide(t *testing.T) {
	a := startDC(t, Options{})
	b := startDC(t, Options{Realm: "emea.example.test"})
	if a.IP() == b.IP() {
		t.Fatalf("both DCs on %s", a.IP())
	}
	if b.NetBIOS() != "EMEA" || b.BaseDN() != "DC=emea,DC=example,DC=test" {
		t.Fatalf("second DC: %s %s", b.NetBIOS(), b.BaseDN())
	}
	dir := a.Dir()
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("directory left after Stop: %v", err)
	}
	if err := a.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := b.Entry(context.Background(), b.BaseDN(), "objectSid"); err != nil {
		t.Fatal(err)
	}
}

func resetAs(dc *DC, bindUser string, bindPw *secret.Secret, dn string, pw *secret.Secret) error {
	c, err := ldap.DialURL(dc.LDAPSURL(), ldap.DialWithTLSConfig(dc.TLSConfig()))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Bind(bindUser, bindPw.Reveal()); err != nil {
		return err
	}
	req := ldap.NewModifyRequest(dn, nil)
	req.Replace("unicodePwd", []string{string(EncodePassword(pw))})
	return c.Modify(req)
}

// BenchmarkStart measures starting a DC from the cached template (copy,
// certificates, samba start, LDAPS/GC/KDC ready) and stopping it.
func BenchmarkStart(b *testing.B) {
	if testing.Short() {
		b.Skip("starts Samba AD DCs")
	}
	ctx := context.Background()
	if dc, err := Start(ctx, Options{}); err != nil { // provision the template outside the timing
		b.Fatal(err)
	} else {
		_ = dc.Stop()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dc, err := Start(ctx, Options{})
		if err != nil {
			b.Fatal(err)
		}
		_ = dc.Stop()
	}
}
