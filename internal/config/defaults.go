package config

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Defaults, in one place. Timing defaults follow the protocol page.
const (
	DefaultQueue              = "password-writeback"
	DefaultMaxConcurrent      = 8
	DefaultGracePeriod        = 30 * time.Second
	DefaultSettleTimeout      = 20 * time.Second
	DefaultSessionIdleTimeout = 5 * time.Second
	DefaultMaxClockSkew       = 2 * time.Minute
	DefaultMaxLifetime        = 15 * time.Minute
	DefaultRetryBudget        = 45 * time.Second
	DefaultDirectoryTimeout   = 10 * time.Second
	DefaultPoolSize           = 4
	DefaultHTTPListen         = "127.0.0.1:9469"
)

// Timings and bounds the config has no key for. They live here, beside
// the defaults of the keys, so that every value the agent runs with has one
// owner: the composition root (internal/agent) passes them on, and the
// packages that use them have no defaults of their own and refuse a zero.
const (
	// BusAcceptTimeout is how long one wait for the next session (or one
	// receive poll) lasts before it starts over.
	BusAcceptTimeout = 30 * time.Second
	// BusErrorBackoff is the first pause after a failed receive.
	BusErrorBackoff = time.Second

	// WritebackBackoffInitial and WritebackBackoffMax shape the backoff
	// between directory retries inside requests.retryBudget.
	WritebackBackoffInitial = 500 * time.Millisecond
	WritebackBackoffMax     = 8 * time.Second
	// WritebackPostWriteTimeout bounds the bookkeeping (session state,
	// audit) after a directory write whose delivery has already ended.
	WritebackPostWriteTimeout = 10 * time.Second

	// DirectoryDialTimeout bounds connecting to one DC (TCP, TLS and
	// bind), so a dead first DC leaves time for the next within
	// directory.timeout, which still bounds the whole operation.
	DirectoryDialTimeout = 5 * time.Second
	// DirectoryIdleCheck is how long a pooled connection may sit unused
	// before it is checked again.
	DirectoryIdleCheck = 30 * time.Second
	// DirectoryDiscoverTTL is how long DCs found through DNS SRV records
	// are used before they are looked up again.
	DirectoryDiscoverTTL = 5 * time.Minute

	// LedgerPruneInterval is how often the ledger drops records older than
	// requests.maxLifetime + requests.maxClockSkew.
	LedgerPruneInterval = time.Minute
	// LedgerLockTimeout bounds the wait for a ledger file another process
	// holds: long enough for a restart's predecessor to let go, short
	// enough that a second agent on the same stateDir fails at once.
	LedgerLockTimeout = 2 * time.Second

	// AuditAggregateMaxKeys bounds the sender kids with an aggregation
	// window of their own; further kids share one (audit.OtherSenders),
	// because an outsider can claim any kid.
	AuditAggregateMaxKeys = 16

	// HTTPCheckTimeout bounds each readiness check behind /readyz.
	HTTPCheckTimeout = 5 * time.Second
)

// DefaultStateDir and the other platform paths depend on the OS.
func platformPaths() (state, audit string) {
	if runtime.GOOS == "windows" {
		pd := os.Getenv("ProgramData")
		if pd == "" {
			pd = `C:\ProgramData`
		}
		return filepath.Join(pd, "wbagent", "state"), filepath.Join(pd, "wbagent", "logs", "audit.jsonl")
	}
	return "/var/lib/wbagent", "/var/log/wbagent/audit.jsonl"
}

// checker collects problems with the line of the key they concern.
type checker struct {
	c     *Config
	probs []Problem
}

func (k *checker) fail(path, format string, args ...any) {
	line := k.c.lines[path]
	// An absent key has no line: point at its nearest present parent.
	for p := path; line == 0 && p != ""; {
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
		line = k.c.lines[p]
	}
	k.probs = append(k.probs, Problem{Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (k *checker) present(path string) bool { _, ok := k.c.lines[path]; return ok }

// complete fills defaults, resolves relative paths and validates; it returns
// every problem found.
func (c *Config) complete() []Problem {
	k := &checker{c: c}
	switch {
	case !k.present("version"):
		k.fail("version", "missing: add `version: 1` as the first line")
	case c.Version != 1:
		k.fail("version", "%d is not supported by this wbagent, which reads version 1", c.Version)
	}
	c.completeAgent(k)
	c.completeServiceBus(k)
	c.completeDirectory(k)
	c.completeRest(k)
	c.completeAuditSafety(k)
	return k.probs
}

func (c *Config) completeAgent(k *checker) {
	a := &c.Agent
	if a.Name == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			k.fail("agent.name", "missing, and the host name cannot be read: set a name")
		}
		a.Name = h
	}
	state, _ := platformPaths()
	if a.StateDir == "" {
		a.StateDir = state
	}
	a.StateDir = c.abs(a.StateDir)
	if len(a.DecryptionKeys) == 0 {
		k.fail("agent.decryptionKeys", "missing: list at least one HPKE private key file (make one with `wbagent keygen`)")
	}
	for i := range a.DecryptionKeys {
		if a.DecryptionKeys[i] == "" {
			k.fail(fmt.Sprintf("agent.decryptionKeys[%d]", i), "empty path")
		}
		a.DecryptionKeys[i] = c.abs(a.DecryptionKeys[i])
	}
	if a.SigningKey == "" {
		k.fail("agent.signingKey", "missing: the Ed25519 key that signs results (make one with `wbagent keygen`)")
	}
	a.SigningKey = c.abs(a.SigningKey)
	if len(a.TrustedSenders) == 0 {
		k.fail("agent.trustedSenders", "missing: list at least one sender, {name: ..., publicKey: FILE}; requests from anyone else are dead-lettered")
	}
	names := map[string]bool{}
	for i := range a.TrustedSenders {
		s := &a.TrustedSenders[i]
		p := fmt.Sprintf("agent.trustedSenders[%d]", i)
		if s.Name == "" {
			k.fail(p+".name", "missing: name the sender (it appears in logs and the audit trail)")
		} else if names[s.Name] {
			k.fail(p+".name", "%q is listed twice", s.Name)
		}
		names[s.Name] = true
		if s.PublicKey == "" {
			k.fail(p+".publicKey", "missing: the sender's Ed25519 public key file (PEM)")
		}
		s.PublicKey = c.abs(s.PublicKey)
	}
	if a.GracePeriod == 0 {
		a.GracePeriod = Duration(DefaultGracePeriod)
	}
}

func (c *Config) completeServiceBus(k *checker) {
	sb := &c.ServiceBus
	switch {
	case sb.ConnectionString != nil && sb.Namespace != "":
		k.fail("servicebus.namespace", "give either connectionString or namespace with credential, not both")
	case sb.ConnectionString == nil && sb.Namespace == "":
		k.fail("servicebus.connectionString", "missing: give connectionString ({env: NAME} or {file: PATH}) or namespace with credential")
	}
	c.secretRef(k, "servicebus.connectionString", sb.ConnectionString)
	if sb.Namespace != "" {
		if strings.Contains(sb.Namespace, "://") || strings.Contains(sb.Namespace, "/") {
			k.fail("servicebus.namespace", "%q should be a host name such as contoso.servicebus.windows.net", sb.Namespace)
		}
		if sb.Credential == nil {
			sb.Credential = &Credential{Type: "default"}
		}
	}
	if cr := sb.Credential; cr != nil {
		if sb.Namespace == "" {
			k.fail("servicebus.credential", "only used with servicebus.namespace")
		}
		switch cr.Type {
		case "":
			cr.Type = "default"
		case "default", "managedIdentity":
		case "clientSecret":
			if cr.TenantID == "" || cr.ClientID == "" || cr.ClientSecret == nil {
				k.fail("servicebus.credential", "type clientSecret needs tenantId, clientId and clientSecret")
			}
		case "clientCertificate", "workloadIdentity":
			c.completeCredential(k, cr)
		default:
			k.fail("servicebus.credential.type", "%q is not known: use default, managedIdentity, workloadIdentity, clientSecret or clientCertificate", cr.Type)
		}
		c.secretRef(k, "servicebus.credential.clientSecret", cr.ClientSecret)
		c.completeAuthority(k, cr)
	}
	if sb.Queue == "" {
		sb.Queue = DefaultQueue
	}
	switch {
	case !k.present("servicebus.maxConcurrent"):
		sb.MaxConcurrent = DefaultMaxConcurrent
	case sb.MaxConcurrent < 1 || sb.MaxConcurrent > 256:
		k.fail("servicebus.maxConcurrent", "%d is out of range: use 1 to 256", sb.MaxConcurrent)
	}
	if sb.SettleTimeout == 0 {
		sb.SettleTimeout = Duration(DefaultSettleTimeout)
	}
	if sb.SessionIdleTimeout == 0 {
		sb.SessionIdleTimeout = Duration(DefaultSessionIdleTimeout)
	}
	if !k.present("servicebus.retry.maxRetries") {
		sb.Retry.MaxRetries = 5
	}
	if sb.Retry.RetryDelay == 0 {
		sb.Retry.RetryDelay = Duration(time.Second)
	}
	if sb.Retry.MaxRetryDelay == 0 {
		sb.Retry.MaxRetryDelay = Duration(30 * time.Second)
	}
	c.completeTransport(k)
}

func (c *Config) completeDirectory(k *checker) {
	d := &c.Directory
	if len(d.Domains) == 0 {
		k.fail("directory.domains", "missing: list at least one domain")
	}
	seen := map[string]bool{}
	for i := range d.Domains {
		c.completeDomain(k, i)
		n := strings.ToLower(d.Domains[i].Name)
		if n != "" && seen[n] {
			k.fail(fmt.Sprintf("directory.domains[%d].name", i), "%q is listed twice", d.Domains[i].Name)
		}
		seen[n] = true
	}
	s := &d.Scope
	if s.ProtectAdminCount == nil {
		t := true
		s.ProtectAdminCount = &t
	}
	if !k.present("directory.scope.protectedAccounts") {
		s.ProtectedAccounts = []string{"Administrator", "krbtgt"}
	}
	for i, ou := range s.IncludeOUs {
		if !looksLikeDN(ou) {
			k.fail(fmt.Sprintf("directory.scope.includeOUs[%d]", i), "%q is not a distinguished name such as OU=Staff,DC=corp,DC=example,DC=test", ou)
		}
	}
	c.completeScope(k)
	for i, g := range s.ProtectedGroups {
		if !looksLikeDN(g) {
			k.fail(fmt.Sprintf("directory.scope.protectedGroups[%d]", i), "%q is not a distinguished name such as CN=Domain Admins,CN=Users,DC=corp,DC=example,DC=test", g)
		}
	}
	c.completeDiscoveryTrust(k)
	switch d.HistoryOnReset {
	case "":
		d.HistoryOnReset = "auto"
	case "auto", "require", "off":
	default:
		k.fail("directory.historyOnReset", "%q is not known: use auto, require or off", d.HistoryOnReset)
	}
	if d.Timeout == 0 {
		d.Timeout = Duration(DefaultDirectoryTimeout)
	}
	switch {
	case !k.present("directory.poolSize"):
		d.PoolSize = DefaultPoolSize
	case d.PoolSize < 1 || d.PoolSize > 64:
		k.fail("directory.poolSize", "%d is out of range: use 1 to 64", d.PoolSize)
	}
}

func (c *Config) completeDomain(k *checker, i int) {
	dm := &c.Directory.Domains[i]
	p := fmt.Sprintf("directory.domains[%d]", i)
	if dm.Name == "" {
		k.fail(p+".name", "missing: the domain's DNS name, e.g. corp.example.test")
	}
	if dm.BaseDN == "" && dm.Name != "" {
		dm.BaseDN = "DC=" + strings.Join(strings.Split(dm.Name, "."), ",DC=")
	} else if dm.BaseDN != "" && !looksLikeDN(dm.BaseDN) {
		k.fail(p+".baseDN", "%q is not a distinguished name such as DC=corp,DC=example,DC=test", dm.BaseDN)
	}
	if dm.NetBIOS == "" && dm.Name != "" {
		dm.NetBIOS = strings.ToUpper(strings.Split(dm.Name, ".")[0])
	}
	// With both, the servers come first and discovery adds DCs; an SRV
	// target outside the domain's name is used only when listed in servers.
	if len(dm.Servers) == 0 && !dm.Discover {
		k.fail(p+".servers", "missing: list ldaps:// servers, or set discover: true to find them by DNS SRV")
	}
	for j, s := range dm.Servers {
		c.checkServer(k, fmt.Sprintf("%s.servers[%d]", p, j), s, dm.TLS.StartTLS)
	}
	for j, s := range dm.GlobalCatalog {
		c.checkServer(k, fmt.Sprintf("%s.globalCatalog[%d]", p, j), s, dm.TLS.StartTLS)
	}
	if dm.Resolver != "" {
		if _, _, err := net.SplitHostPort(dm.Resolver); err != nil {
			k.fail(p+".resolver", "%q is not host:port, e.g. 10.0.0.53:53", dm.Resolver)
		}
	}
	if dm.TLS.CAFile != "" {
		dm.TLS.CAFile = c.abs(dm.TLS.CAFile)
	}
	for j, pin := range dm.TLS.PinSHA256 {
		if b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pin, "sha256//")); err != nil || len(b) != 32 {
			k.fail(fmt.Sprintf("%s.tls.pinSHA256[%d]", p, j), "%q is not the base64 SHA-256 of a public key (44 characters ending in =): `wbagent tls show ldaps://DC:636` prints each key's pin", pin)
		}
	}
	b := &dm.Bind
	switch b.Method {
	case "", "simple":
		b.Method = "simple"
		if b.User == "" {
			k.fail(p+".bind.user", "missing: the service account, e.g. svc-writeback@corp.example.test")
		}
		if b.Password == nil {
			k.fail(p+".bind.password", "missing: the service account's password, as {file: PATH} or {env: NAME}")
		}
	case "kerberos":
		if runtime.GOOS == "windows" {
			k.fail(p+".bind.method", "kerberos with a keytab is for Linux; on Windows use sspi (the service's own identity, e.g. a gMSA)")
		}
		if b.Keytab == "" || b.User == "" {
			k.fail(p+".bind", "method kerberos needs user (the principal, e.g. svc-writeback) and keytab")
		}
		if b.Krb5Conf == "" {
			b.Krb5Conf = "/etc/krb5.conf"
		}
		if b.Realm == "" {
			b.Realm = strings.ToUpper(dm.Name)
		}
		b.Keytab, b.Krb5Conf = c.abs(b.Keytab), c.abs(b.Krb5Conf)
	case "sspi":
		if runtime.GOOS != "windows" {
			k.fail(p+".bind.method", "sspi is only available on Windows; on Linux use simple or kerberos")
		}
	default:
		k.fail(p+".bind.method", "%q is not known: use simple, kerberos or sspi", b.Method)
	}
	c.secretRef(k, p+".bind.password", b.Password)
}

// checkServer enforces the one rule that matters most: passwords never cross
// the network in clear text.
func (c *Config) checkServer(k *checker, path, s string, startTLS bool) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		k.fail(path, "%q is not a URL such as ldaps://dc1.corp.example.test:636", s)
		return
	}
	switch u.Scheme {
	case "ldaps":
	case "ldap":
		if !startTLS {
			k.fail(path, "%q is not allowed: password writes need ldaps:// or startTLS: true", s)
		}
	default:
		k.fail(path, "%q: scheme %q is not known: use ldaps:// (or ldap:// with startTLS: true)", s, u.Scheme)
	}
}

func (c *Config) completeRest(k *checker) {
	r := &c.Requests
	if r.MaxClockSkew == 0 {
		r.MaxClockSkew = Duration(DefaultMaxClockSkew)
	}
	if r.MaxLifetime == 0 {
		r.MaxLifetime = Duration(DefaultMaxLifetime)
	}
	if r.RetryBudget == 0 {
		r.RetryBudget = Duration(DefaultRetryBudget)
	}
	if r.RetryBudget >= r.MaxLifetime {
		k.fail("requests.retryBudget", "%s must be shorter than requests.maxLifetime (%s)", r.RetryBudget.D(), r.MaxLifetime.D())
	}
	_, auditFile := platformPaths()
	if c.Audit.File == "" {
		c.Audit.File = auditFile
	}
	c.Audit.File = c.abs(c.Audit.File)
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "error":
	default:
		c.warnings = append(c.warnings, fmt.Sprintf("log.level %q is not known; logging at info", c.Log.Level))
	}
	switch c.Log.Format {
	case "":
		c.Log.Format = "json"
	case "json", "console":
	default:
		k.fail("log.format", "%q is not known: use json or console", c.Log.Format)
	}
	if f := c.Log.File; f != nil {
		if f.Path == "" {
			k.fail("log.file.path", "missing: where to write the log, or remove log.file to log to stderr only")
		}
		f.Path = c.abs(f.Path)
		if f.MaxSizeMB == 0 {
			f.MaxSizeMB = 100
		}
		if !k.present("log.file.maxBackups") {
			f.MaxBackups = 10
		}
	}
	if !k.present("http.listen") {
		c.HTTP.Listen = DefaultHTTPListen
	} else if c.HTTP.Listen != "" {
		if _, _, err := net.SplitHostPort(c.HTTP.Listen); err != nil {
			k.fail("http.listen", "%q is not host:port, e.g. 127.0.0.1:9469 (empty turns the listener off)", c.HTTP.Listen)
		}
	}
}

func (c *Config) secretRef(k *checker, path string, r *SecretRef) {
	if r == nil {
		return
	}
	if r.File != "" {
		r.File = c.abs(r.File)
	}
	if r.Value != nil {
		c.warnings = append(c.warnings, path+" is written inline in the config: move it to {file: PATH} or {env: NAME} so the config can be shared without the secret")
	}
}

// abs resolves a path relative to the config file's folder.
func (c *Config) abs(p string) string {
	if p == "" || filepath.IsAbs(p) || (runtime.GOOS == "windows" && strings.HasPrefix(p, `\\`)) {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

func looksLikeDN(s string) bool {
	for _, part := range strings.Split(s, ",") {
		kv := strings.SplitN(strings.TrimSpace(part), "=", 2)
		if len(kv) != 2 || kv[0] == "" || kv[1] == "" {
			return false
		}
	}
	return s != ""
}
