package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"wbagent/internal/secret"
)

// Bind methods.
const (
	BindSimple   = "simple"   // UPN (or DN) and password
	BindKerberos = "kerberos" // keytab and krb5.conf, GSSAPI
	BindSSPI     = "sspi"     // Windows: the service's own identity (e.g. a gMSA)
)

// History-on-reset modes: whether a reset asks the DC to enforce password
// history through the policy hints control.
const (
	HistoryAuto    = "auto"    // send the control when the DC advertises it
	HistoryRequire = "require" // refuse resets on DCs that do not advertise it
	HistoryOff     = "off"     // never send it
)

// Options configure the directory: the agent maps its config onto them.
// The config owns every default (HistoryOnReset, Timeout and PoolSize are
// its keys; DialTimeout, IdleCheck and DiscoverTTL its fixed values): New
// and Check refuse an empty one rather than pick a value nobody chose.
type Options struct {
	Domains []Domain
	Scope   Scope
	// HistoryOnReset is auto, require or off (directory.historyOnReset).
	HistoryOnReset string
	// Timeout bounds each Apply, PwdLastSet and Ready call as a whole,
	// failover included (directory.timeout).
	Timeout time.Duration
	// DialTimeout bounds connecting to one server (TCP, TLS and bind), so
	// a dead first server leaves time for the next within Timeout.
	DialTimeout time.Duration
	// PoolSize is the most connections open per domain
	// (directory.poolSize).
	PoolSize int
	// IdleCheck: a pooled connection idle longer than this is checked with
	// a rootDSE read before it is used again.
	IdleCheck time.Duration
	// DiscoverTTL is how long servers found by DNS SRV are kept.
	DiscoverTTL time.Duration
	// Resolver looks up SRV records for Discover; default net.DefaultResolver.
	Resolver Resolver
	// Dial opens TCP connections; default a net.Dialer. Tests inject faults
	// here.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Now is the clock; default time.Now.
	Now func() time.Time
	// OnFailover, when set, is called each time a domain's writes move to
	// another domain controller, so the agent can count failovers.
	OnFailover func(domain, dc string)
}

// Resolver is the part of *net.Resolver that discovery uses.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Domain is one AD domain the agent writes to.
type Domain struct {
	// Name is the DNS name, e.g. corp.example.test.
	Name string
	// NetBIOS is the short name, e.g. CORP (matches sAMAccountName targets).
	NetBIOS string
	// BaseDN is the naming context; empty: the DC's defaultNamingContext.
	BaseDN string
	// Servers are ldaps://host[:636] or ldap://host[:389] (StartTLS) URLs,
	// tried in order.
	Servers []string
	// Discover adds the DCs of DNS SRV _ldap._tcp.dc._msdcs.<Name>.
	Discover bool
	TLS      TLS
	Bind     Bind
	// GlobalCatalog are ldaps://host:3269 URLs used to find accounts
	// forest-wide when several domains are configured.
	GlobalCatalog []string
}

// TLS settings of a domain. Connections are always encrypted: ldaps:// or
// StartTLS; a plain ldap:// URL without StartTLS is refused.
type TLS struct {
	// CAFile is a PEM bundle of trusted CAs; empty: the system roots.
	CAFile string
	// ServerName overrides the name checked in the DC's certificate (and
	// the Kerberos service principal's host).
	ServerName string
	// StartTLS upgrades ldap:// URLs (port 389) with StartTLS.
	StartTLS bool
	// InsecureSkipVerify disables certificate checks. Not offered in the
	// config; for tests of the check command only.
	InsecureSkipVerify bool
	// PinSHA256 are trusted keys: base64 SHA-256 of a SubjectPublicKeyInfo.
	// A DC is trusted when one of them is anywhere in the chain it presents
	// (the name is still checked unless the pin is the leaf's); with CAFile
	// also set, the chain must verify against it as well.
	PinSHA256 []string
}

// Bind is how the agent authenticates to the DCs of a domain.
type Bind struct {
	// Method is simple (default), kerberos or sspi.
	Method string
	// User: for simple, a UPN, DN or DOMAIN\name; for kerberos, the
	// principal (name or name@REALM).
	User string
	// Password for simple binds.
	Password *secret.Secret
	// Keytab and Krb5Conf for kerberos.
	Keytab   string
	Krb5Conf string
	// Realm for kerberos; default: the domain name in upper case.
	Realm string
}

// Scope limits which accounts may be written.
type Scope struct {
	// IncludeOUs: only accounts below one of these DNs. Empty is an error
	// unless EntireDomain is set.
	IncludeOUs []string
	// EntireDomain lets writes reach anywhere in the configured domains
	// when IncludeOUs is empty.
	EntireDomain bool
	// AllowPrivileged names built-in privileged classes (PrivilegedNames)
	// whose members may be written after all.
	AllowPrivileged []string
	// ProtectAdminCount refuses accounts with adminCount=1.
	ProtectAdminCount bool
	// ProtectedGroups refuses direct and nested members (and accounts whose
	// primary group is, or is nested in, one of them).
	ProtectedGroups []string
	// ProtectedAccounts refuses these accounts: a sAMAccountName, a UPN
	// (with @) or a DN (with =), compared without case.
	ProtectedAccounts []string
	// AllowDisabled lets writes reach disabled accounts.
	AllowDisabled bool
}

// server is one parsed DC address.
type server struct {
	url      string // as configured
	host     string
	port     string
	ldaps    bool // TLS from the first byte; otherwise StartTLS
	catalog  bool // a global catalog port: read only
	hostname string
}

// addr is host:port for dialling.
func (s *server) addr() string { return net.JoinHostPort(s.host, s.port) }

// parseServer checks u is an encrypted LDAP URL and fills in the port.
func parseServer(u string, startTLS bool) (*server, error) {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return nil, fmt.Errorf("server %q: want ldaps://host[:port] or ldap://host[:port] with startTLS", u)
	}
	s := &server{url: u, host: p.Hostname(), port: p.Port()}
	switch strings.ToLower(p.Scheme) {
	case "ldaps":
		s.ldaps = true
		if s.port == "" {
			s.port = "636"
		}
	case "ldap":
		if !startTLS {
			return nil, fmt.Errorf("server %q: password writes need an encrypted connection: use ldaps:// or set tls.startTLS", u)
		}
		if s.port == "" {
			s.port = "389"
		}
	default:
		return nil, fmt.Errorf("server %q: scheme %q is not ldaps or ldap", u, p.Scheme)
	}
	s.catalog = s.port == "3268" || s.port == "3269"
	s.hostname = s.host
	return s, nil
}

// withDefaults returns a copy of o with defaults filled in, or an error
// naming the first invalid setting.
func (o Options) withDefaults() (Options, error) {
	if len(o.Domains) == 0 {
		return o, errors.New("directory: no domains configured")
	}
	switch o.HistoryOnReset {
	case HistoryAuto, HistoryRequire, HistoryOff:
	default:
		return o, fmt.Errorf("directory: historyOnReset %q: want auto, require or off", o.HistoryOnReset)
	}
	for _, t := range []struct {
		what, key string // key: the config key, where there is one
		d         time.Duration
	}{
		{"timeout", " (directory.timeout)", o.Timeout},
		{"dial timeout", "", o.DialTimeout},
		{"idle check", "", o.IdleCheck},
		{"discovery TTL", "", o.DiscoverTTL},
	} {
		if t.d <= 0 {
			return o, fmt.Errorf("directory: %s %s: give a positive duration%s", t.what, t.d, t.key)
		}
	}
	o.DialTimeout = min(o.DialTimeout, o.Timeout)
	if o.PoolSize <= 0 {
		return o, fmt.Errorf("directory: pool size %d: use 1 or more (directory.poolSize)", o.PoolSize)
	}
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		o.Dial = d.DialContext
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	domains := make([]Domain, len(o.Domains))
	copy(domains, o.Domains)
	o.Domains = domains
	for i := range o.Domains {
		d := &o.Domains[i]
		if d.Name == "" {
			return o, fmt.Errorf("directory: domains[%d]: name is empty", i)
		}
		if len(d.Servers) == 0 && !d.Discover {
			return o, fmt.Errorf("directory: domain %s: no servers and discover is off", d.Name)
		}
		if d.Discover && !discoveryAnchored(d.TLS) {
			return o, fmt.Errorf("directory: domain %s: discover needs tls.caFile or tls.pinSHA256: the system roots alone do not vouch for a domain controller found by DNS", d.Name)
		}
		for _, s := range d.Servers {
			if _, err := parseServer(s, d.TLS.StartTLS); err != nil {
				return o, fmt.Errorf("directory: domain %s: %w", d.Name, err)
			}
		}
		for _, p := range d.TLS.PinSHA256 {
			if err := CheckPin(p); err != nil {
				return o, fmt.Errorf("directory: domain %s: tls.pinSHA256: %w", d.Name, err)
			}
		}
		for _, s := range d.GlobalCatalog {
			if _, err := parseServer(s, d.TLS.StartTLS); err != nil {
				return o, fmt.Errorf("directory: domain %s: global catalog: %w", d.Name, err)
			}
		}
		if d.BaseDN != "" {
			if _, err := ldap.ParseDN(d.BaseDN); err != nil {
				return o, fmt.Errorf("directory: domain %s: baseDN %q: %w", d.Name, d.BaseDN, err)
			}
		}
		if d.Bind.Method == "" {
			d.Bind.Method = BindSimple
		}
		switch d.Bind.Method {
		case BindSimple:
			if d.Bind.User == "" || d.Bind.Password.IsEmpty() {
				return o, fmt.Errorf("directory: domain %s: simple bind needs a user and a password", d.Name)
			}
		case BindKerberos:
			if d.Bind.User == "" || d.Bind.Keytab == "" {
				return o, fmt.Errorf("directory: domain %s: kerberos bind needs a user (principal) and a keytab", d.Name)
			}
			if d.Bind.Realm == "" {
				d.Bind.Realm = strings.ToUpper(d.Name)
			}
		case BindSSPI:
			if err := sspiAvailable(); err != nil {
				return o, fmt.Errorf("directory: domain %s: %w", d.Name, err)
			}
		default:
			return o, fmt.Errorf("directory: domain %s: bind method %q: want simple, kerberos or sspi", d.Name, d.Bind.Method)
		}
	}
	if err := o.Scope.validate(); err != nil {
		return o, err
	}
	for _, dn := range append(append([]string{}, o.Scope.IncludeOUs...), o.Scope.ProtectedGroups...) {
		if _, err := ldap.ParseDN(dn); err != nil {
			return o, fmt.Errorf("directory: scope: %q is not a DN: %w", dn, err)
		}
	}
	return o, nil
}
