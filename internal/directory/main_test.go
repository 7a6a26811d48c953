package directory

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/config"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/secret"
)

// fixture is the one Samba AD DC the package's integration tests share:
//
//	OU=Staff   delegated to svc-wb by installer/ad/delegate-samba.sh
//	OU=Other   in scope, not delegated (access_denied)
//	CN=Users   out of scope
//	CN=Tier0 ⊇ CN=Tier0-Nested  protected groups
//
// Domain policy: min length 7, complexity, history 24, min age 0, lockout
// after 3 bad passwords.
type fixture struct {
	dc           *sambadc.DC
	staff, other string
	svcName      string
	svcPw        *secret.Secret
	tier0        string
	nested       string
	logs         *observer.ObservedLogs
	dir          *Directory
}

var fx *fixture

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	f, err := setup()
	if err != nil {
		fmt.Fprintf(os.Stderr, "directory tests need a Samba AD DC (run `make deps` to install Samba): %v\n", err)
		os.Exit(1)
	}
	fx = f
	code := m.Run()
	if err := f.passwordsInLogs(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	f.dir.Close()
	_ = f.dc.Stop()
	os.Exit(code)
}

func setup() (*fixture, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dc, err := sambadc.Start(ctx, sambadc.Options{})
	if err != nil {
		return nil, err
	}
	f := &fixture{dc: dc, svcName: "svc-wb", svcPw: secret.FromString("Svc-Writeback-Passw0rd")}
	fail := func(err error) (*fixture, error) { _ = dc.Stop(); return nil, err }
	if err := dc.SetPasswordPolicy(ctx, sambadc.PasswordPolicy{
		MinLength: sambadc.Ptr(7), Complexity: sambadc.Ptr(true), History: sambadc.Ptr(24),
		MinAge: sambadc.Ptr(time.Duration(0)), LockoutThreshold: sambadc.Ptr(3),
	}); err != nil {
		return fail(err)
	}
	if f.staff, err = dc.CreateOU(ctx, "Staff", ""); err != nil {
		return fail(err)
	}
	if f.other, err = dc.CreateOU(ctx, "Other", ""); err != nil {
		return fail(err)
	}
	if _, err := dc.CreateUser(ctx, sambadc.UserSpec{Name: f.svcName, Password: f.svcPw}); err != nil {
		return fail(err)
	}
	if err := dc.Delegate(ctx, f.svcName, f.staff); err != nil {
		return fail(err)
	}
	if f.tier0, err = dc.CreateGroup(ctx, "Tier0", ""); err != nil {
		return fail(err)
	}
	if f.nested, err = dc.CreateGroup(ctx, "Tier0-Nested", ""); err != nil {
		return fail(err)
	}
	if err := dc.AddMember(ctx, f.tier0, f.nested); err != nil {
		return fail(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	f.logs = logs
	if f.dir, err = New(f.options(), zap.New(core)); err != nil {
		return fail(err)
	}
	return f, nil
}

// options are the agent's settings against the fixture DC, bound as the
// delegated non-admin service account.
func (f *fixture) options() Options {
	return Options{
		Domains: []Domain{{
			Name:    f.dc.Realm(),
			NetBIOS: f.dc.NetBIOS(),
			BaseDN:  f.dc.BaseDN(),
			Servers: []string{f.dc.LDAPSURL()},
			TLS:     TLS{CAFile: f.dc.CACertPath(), ServerName: f.dc.ServerName()},
			Bind:    Bind{Method: BindSimple, User: f.svcName + "@" + f.dc.Realm(), Password: f.svcPw},
		}},
		Scope: Scope{
			IncludeOUs:        []string{f.staff, f.other},
			ProtectAdminCount: true,
			ProtectedGroups:   []string{f.tier0, "CN=Domain Admins,CN=Users," + f.dc.BaseDN()},
			ProtectedAccounts: []string{"Administrator", "krbtgt"},
		},
		HistoryOnReset: HistoryAuto,
		Timeout:        15 * time.Second,
		DialTimeout:    config.DirectoryDialTimeout,
		PoolSize:       4,
		IdleCheck:      config.DirectoryIdleCheck,
		DiscoverTTL:    config.DirectoryDiscoverTTL,
	}
}

func needDC(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs a Samba AD DC")
	}
}

var userSeq atomic.Int64

// newUser creates a user with password pw in ou and returns it.
func newUser(t testing.TB, ou string, pw string, opts ...func(*sambadc.UserSpec)) *sambadc.User {
	t.Helper()
	name := fmt.Sprintf("u%d-%s", userSeq.Add(1), strings.ToLower(strings.NewReplacer("/", "", "_", "", "Test", "").Replace(t.Name())))
	if len(name) > 20 {
		name = name[:20]
	}
	spec := sambadc.UserSpec{Name: name, OU: ou, Password: secret.FromString(pw)}
	for _, o := range opts {
		o(&spec)
	}
	u, err := fx.dc.CreateUser(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// bindCode binds as upn with pw on the DC and returns "" or the AD code.
func bindCode(t testing.TB, upn, pw string) string {
	t.Helper()
	code, err := fx.dc.BindCode(context.Background(), upn, secret.FromString(pw))
	if err != nil {
		t.Fatalf("bind as %s: %v", upn, err)
	}
	return code
}

// passwordsInLogs fails when any password the tests used reaches a log
// line of the shared directory.
func (f *fixture) passwordsInLogs() error {
	pws := []string{pw1, pw2, pw3, "Pässwörd-✓-Ωmega-2026", f.svcPw.Reveal(), f.dc.AdminPassword().Reveal()}
	for _, e := range f.logs.All() {
		line := e.Message + fmt.Sprint(e.ContextMap())
		for _, pw := range pws {
			if strings.Contains(line, pw) {
				return fmt.Errorf("a log line holds a password: %s", line)
			}
		}
	}
	return nil
}

// wantBind binds as upn with pw and fails the test unless the AD code is
// want ("" for success).
func wantBind(t testing.TB, upn, pw, want string) {
	t.Helper()
	if got := bindCode(t, upn, pw); got != want {
		t.Fatalf("bind as %s: code %q, want %q", upn, got, want)
	}
}

// svcConn is a raw LDAPS connection to the DC, bound as the service
// account, for what the Directory would not send; it is closed when the
// test ends.
func svcConn(t testing.TB) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(fx.dc.LDAPSURL(), ldap.DialWithTLSConfig(fx.dc.TLSConfig()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Bind(fx.svcName+"@"+fx.dc.Realm(), fx.svcPw.Reveal()); err != nil {
		t.Fatal(err)
	}
	return conn
}

// newDir makes a Directory with o, closed when the test ends.
func newDir(t testing.TB, o Options) *Directory {
	t.Helper()
	d, err := New(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}
