package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"
	"github.com/go-ldap/ldap/v3/gssapi"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/keytab"
)

// binder authenticates a fresh connection.
type binder interface {
	bind(ctx context.Context, conn *ldap.Conn, srv *server) error
	// who names the identity for error messages (never a secret).
	who() string
}

func newBinder(d *Domain) (binder, error) {
	switch d.Bind.Method {
	case BindSimple, "":
		return &simpleBinder{b: d.Bind}, nil
	case BindKerberos:
		return &kerberosBinder{b: d.Bind, domain: d}, nil
	case BindSSPI:
		return newSSPIBinder(d)
	}
	return nil, fmt.Errorf("bind method %q: want simple, kerberos or sspi", d.Bind.Method)
}

type simpleBinder struct{ b Bind }

func (s *simpleBinder) bind(_ context.Context, conn *ldap.Conn, _ *server) error {
	return conn.Bind(s.b.User, s.b.Password.Reveal())
}

func (s *simpleBinder) who() string { return s.b.User }

// kerberosBinder binds with GSSAPI from a keytab. The Kerberos client (and
// its ticket cache) is shared by all connections of the domain; each bind
// gets its own security context.
type kerberosBinder struct {
	b      Bind
	domain *Domain

	mu sync.Mutex
	cl *client.Client
}

func (k *kerberosBinder) who() string { return k.principal() + "@" + k.b.Realm }

func (k *kerberosBinder) principal() string {
	name, _, _ := strings.Cut(k.b.User, "@")
	return name
}

// client returns the shared, logged-in Kerberos client.
func (k *kerberosBinder) client() (*client.Client, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil {
		return k.cl, nil
	}
	conf := k.b.Krb5Conf
	var cfg *config.Config
	var err error
	if conf == "" {
		cfg, err = config.Load("/etc/krb5.conf")
	} else {
		cfg, err = config.Load(conf)
	}
	if err != nil {
		return nil, fmt.Errorf("load krb5.conf %s: %w", conf, err)
	}
	kt, err := keytab.Load(k.b.Keytab)
	if err != nil {
		return nil, fmt.Errorf("load keytab %s: %w", k.b.Keytab, err)
	}
	realm := k.b.Realm
	if _, r, ok := strings.Cut(k.b.User, "@"); ok {
		realm = r
	}
	cl := client.NewWithKeytab(k.principal(), realm, kt, cfg, client.DisablePAFXFAST(true))
	if err := cl.Login(); err != nil {
		return nil, fmt.Errorf("kerberos login as %s@%s with keytab %s: %w", k.principal(), realm, k.b.Keytab, err)
	}
	k.cl = cl
	return cl, nil
}

// reset drops the shared client, so the next bind reads the keytab again
// (it may have been rotated).
func (k *kerberosBinder) reset() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cl != nil {
		k.cl.Destroy()
		k.cl = nil
	}
}

func (k *kerberosBinder) bind(_ context.Context, conn *ldap.Conn, srv *server) error {
	spn, err := servicePrincipal(k.domain, srv)
	if err != nil {
		return err
	}
	cl, err := k.client()
	if err != nil {
		return err
	}
	if err := conn.GSSAPIBind(&gssapi.Client{Client: cl}, spn, ""); err != nil {
		if !isNetwork(err) {
			k.reset()
		}
		return fmt.Errorf("kerberos bind (service principal %s): %w", spn, err)
	}
	return nil
}

// servicePrincipal is ldap/<host>: the TLS server name override when set
// (needed when servers are given as addresses), else the URL's host.
func servicePrincipal(d *Domain, srv *server) (string, error) {
	host := srv.hostname
	if d.TLS.ServerName != "" {
		host = d.TLS.ServerName
	}
	if net.ParseIP(host) != nil {
		return "", errors.New("kerberos needs the DC's host name, not an address: set tls.serverName or use host names in servers")
	}
	return "ldap/" + strings.ToLower(host), nil
}
