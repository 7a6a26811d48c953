package directory

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"wbagent/internal/lab/sambadc"
	"wbagent/internal/wire"
)

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFailoverClosedPort(t *testing.T) {
	needDC(t)
	o := fx.options()
	o.Domains[0].Servers = []string{"ldaps://" + closedPort(t), fx.dc.LDAPSURL()}
	var failovers []string
	o.OnFailover = func(domain, dc string) { failovers = append(failovers, domain+" "+dc) }
	d := newDir(t, o)
	u := newUser(t, fx.staff, pw1)
	start := time.Now()
	out := apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if took := time.Since(start); took > o.Timeout {
		t.Fatalf("failover took %v, more than one timeout (%v)", took, o.Timeout)
	}
	if out.DC != fx.dc.LDAPSURL() {
		t.Fatalf("written on %s", out.DC)
	}
	wantBind(t, u.UPN, pw2, "")
	if len(failovers) != 1 || !strings.HasSuffix(failovers[0], " "+fx.dc.LDAPSURL()) {
		t.Fatalf("failovers reported: %v", failovers)
	}
}

// A first server that accepts TCP and then never speaks TLS costs one dial
// timeout, not the whole operation timeout.
func TestFailoverSilentServer(t *testing.T) {
	needDC(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	o := fx.options()
	o.Timeout = 6 * time.Second
	o.DialTimeout = 2 * time.Second
	o.Domains[0].Servers = []string{"ldaps://" + ln.Addr().String(), fx.dc.LDAPSURL()}
	d := newDir(t, o)
	u := newUser(t, fx.staff, pw1)
	start := time.Now()
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
	if took := time.Since(start); took > o.Timeout {
		t.Fatalf("took %v", took)
	}
	// The silent server is now tried last: the next write is immediate.
	start = time.Now()
	wantCode(t, apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw3)), wire.CodeOK, "")
	if took := time.Since(start); took > o.DialTimeout {
		t.Fatalf("second write took %v: the failed server was tried first again", took)
	}
}

// A DC that vanishes mid-connection: pooled connections through a proxy are
// cut. With a second server the lookup is retried there; with none the
// outcome is transient, and the next write after the DC returns succeeds.
func TestVanishingDC(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	p, err := sambadc.NewProxy(ctx, fx.dc.IP()+":636")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	u := newUser(t, fx.staff, pw1)

	o := fx.options()
	o.Domains[0].Servers = []string{"ldaps://" + p.Addr(), fx.dc.LDAPSURL()}
	two := newDir(t, o)
	out := apply(t, two, reset(Target{UserPrincipalName: u.UPN}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if out.DC != "ldaps://"+p.Addr() {
		t.Fatalf("first write went to %s, want the proxy", out.DC)
	}
	p.Cut()
	p.Refuse()
	out = apply(t, two, reset(Target{UserPrincipalName: u.UPN}, pw3))
	wantCode(t, out, wire.CodeOK, "")
	if out.DC != fx.dc.LDAPSURL() {
		t.Fatalf("write after the cut went to %s", out.DC)
	}
	wantBind(t, u.UPN, pw3, "")

	o.Domains[0].Servers = []string{"ldaps://" + p.Addr()}
	p.Resume()
	one := newDir(t, o)
	wantCode(t, apply(t, one, reset(Target{UserPrincipalName: u.UPN}, pw1)), wire.CodeOK, "")
	p.Cut()
	p.Refuse()
	out = apply(t, one, reset(Target{UserPrincipalName: u.UPN}, pw2))
	if out.Code != wire.CodeDirectoryUnavailable || !out.Transient {
		t.Fatalf("only DC gone: %s transient %v (%v)", out.Code, out.Transient, out.Err)
	}
	wantBind(t, u.UPN, pw1, "")
	p.Resume()
	wantCode(t, apply(t, one, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
}

// Killing Samba itself (not a proxy): transient while it is down, fine
// after it restarts, and the pool reconnects on its own.
func TestKilledDC(t *testing.T) {
	needDC(t)
	ctx := context.Background()
	u := newUser(t, fx.staff, pw1)
	wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw2)), wire.CodeOK, "")
	fx.dc.Kill()
	out := apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw3))
	if out.Code != wire.CodeDirectoryUnavailable || !out.Transient {
		t.Fatalf("DC killed: %s transient %v (%v)", out.Code, out.Transient, out.Err)
	}
	if err := fx.dir.Ready(ctx); err == nil {
		t.Fatal("Ready while the DC is down")
	}
	if err := fx.dc.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	wantCode(t, apply(t, fx.dir, reset(Target{UserPrincipalName: u.UPN}, pw3)), wire.CodeOK, "")
	wantBind(t, u.UPN, pw3, "")
}

// discover: true finds the DC by SRV through the injected resolver; the
// injected dialer maps its host name to the DC's loopback address, and the
// certificate is checked against that host name.
func TestDiscover(t *testing.T) {
	needDC(t)
	host := fx.dc.ServerName()
	o := fx.options()
	o.Domains[0].Servers = nil
	o.Domains[0].Discover = true
	o.Domains[0].TLS.ServerName = ""
	o.Resolver = fakeResolver{srvs: []*net.SRV{{Target: host + ".", Port: 389, Priority: 0, Weight: 100}}}
	var dialed []string
	o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialed = append(dialed, addr)
		if h, port, _ := net.SplitHostPort(addr); strings.EqualFold(h, host) {
			addr = net.JoinHostPort(fx.dc.IP(), port)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	d := newDir(t, o)
	u := newUser(t, fx.staff, pw1)
	out := apply(t, d, reset(Target{UserPrincipalName: u.UPN}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if out.DC != "ldaps://"+host+":636" || len(dialed) == 0 {
		t.Fatalf("DC %s, dialled %v", out.DC, dialed)
	}
	wantBind(t, u.UPN, pw2, "")
}

// Two domains (two forests here: Samba cannot host a child domain), found
// by searching each domain, written on the owning domain's DC.
func TestTwoDomains(t *testing.T) {
	needDC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emea := sambadc.StartTest(ctx, t, sambadc.Options{Realm: "emea.example.test"})
	staff, err := emea.CreateOU(ctx, "Staff", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emea.CreateUser(ctx, sambadc.UserSpec{Name: fx.svcName, Password: fx.svcPw}); err != nil {
		t.Fatal(err)
	}
	if err := emea.Delegate(ctx, fx.svcName, staff); err != nil {
		t.Fatal(err)
	}
	eu, err := emea.CreateUser(ctx, sambadc.UserSpec{Name: "eve", OU: staff, Password: secretOf(pw1)})
	if err != nil {
		t.Fatal(err)
	}
	cu := newUser(t, fx.staff, pw1)

	o := fx.options()
	o.Scope.IncludeOUs = append(o.Scope.IncludeOUs, staff)
	o.Domains = append(o.Domains, Domain{
		Name: emea.Realm(), NetBIOS: emea.NetBIOS(), Servers: []string{emea.LDAPSURL()},
		TLS:  TLS{CAFile: emea.CACertPath(), ServerName: emea.ServerName()},
		Bind: Bind{User: fx.svcName + "@" + emea.Realm(), Password: fx.svcPw},
	})
	d := newDir(t, o)
	out := apply(t, d, reset(Target{UserPrincipalName: eu.UPN}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if out.Domain != emea.Realm() || out.DC != emea.LDAPSURL() {
		t.Fatalf("EMEA user written in %s on %s", out.Domain, out.DC)
	}
	if code, err := emea.BindCode(ctx, eu.UPN, secretOf(pw2)); err != nil || code != "" {
		t.Fatalf("bind in EMEA: %q %v", code, err)
	}
	out = apply(t, d, reset(Target{ObjectGUID: cu.ObjectGUID}, pw2))
	wantCode(t, out, wire.CodeOK, "")
	if out.Domain != fx.dc.Realm() {
		t.Fatalf("CORP user written in %s", out.Domain)
	}
	wantCode(t, apply(t, d, reset(Target{SAMAccountName: "eve", Domain: "EMEA"}, pw3)), wire.CodeOK, "")
	wantCode(t, apply(t, d, reset(Target{SAMAccountName: fx.svcName}, pw3)), wire.CodeUserAmbiguous, "")

	// With a global catalog configured, UPN and objectGUID lookups go there
	// first (the CORP catalog knows only CORP's accounts).
	o.Domains[0].GlobalCatalog = []string{fx.dc.GlobalCatalogURL()}
	g := newDir(t, o)
	out = apply(t, g, reset(Target{UserPrincipalName: cu.UPN}, pw3))
	wantCode(t, out, wire.CodeOK, "")
	if out.DC != fx.dc.LDAPSURL() {
		t.Fatalf("write went to %s, not the domain's DC", out.DC)
	}
	wantBind(t, cu.UPN, pw3, "")
}

// More writers than pooled connections: every write lands, each on its own
// account, and the pool never exceeds its size.
func TestConcurrentResets(t *testing.T) {
	needDC(t)
	const writers = 8
	users := make([]*sambadc.User, writers)
	for i := range users {
		users[i] = newUser(t, fx.staff, pw1)
	}
	errs := make(chan error, writers)
	for i := range users {
		go func(u *sambadc.User) {
			for _, pw := range []string{pw2, pw3} {
				if out := fx.dir.Apply(context.Background(), reset(Target{ObjectGUID: u.ObjectGUID}, pw)); out.Code != wire.CodeOK {
					errs <- fmt.Errorf("%s: %s %v", u.SAMAccountName, out.Code, out.Err)
					return
				}
			}
			errs <- nil
		}(users[i])
	}
	for range users {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(fx.dir.domains[0].pool.slots); n != 0 {
		t.Fatalf("%d pool slots still taken", n)
	}
	if n, size := len(fx.dir.domains[0].pool.idle), fx.options().PoolSize; n > size {
		t.Fatalf("%d idle connections, pool size %d", n, size)
	}
	for _, u := range users {
		wantBind(t, u.UPN, pw3, "")
	}
}
