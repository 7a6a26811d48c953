package config

import (
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Config is the whole agent configuration, version 1. Field names and YAML
// keys are a contract with admins' files and the docs: add, never rename.
type Config struct {
	Version    int        `yaml:"version"`
	Agent      Agent      `yaml:"agent"`
	ServiceBus ServiceBus `yaml:"servicebus"`
	Directory  Directory  `yaml:"directory"`
	Requests   Requests   `yaml:"requests"`
	Audit      Audit      `yaml:"audit"`
	Log        Log        `yaml:"log"`
	HTTP       HTTP       `yaml:"http"`

	// Path is the file the config was loaded from (absolute).
	Path string `yaml:"-"`
	// lines maps a key path (agent.name, directory.domains[0].servers[1]) to
	// its line, so validation errors can point into the file.
	lines map[string]int
	// warnings are non-fatal findings, e.g. secrets written inline.
	warnings []string
}

// Agent is the `agent` section: identity, local state and keys.
type Agent struct {
	Name           string   `yaml:"name"`
	StateDir       string   `yaml:"stateDir"`
	DecryptionKeys []string `yaml:"decryptionKeys"`
	SigningKey     string   `yaml:"signingKey"`
	TrustedSenders []Sender `yaml:"trustedSenders"`
	// GracePeriod bounds how long a stop waits for in-flight writebacks.
	GracePeriod Duration `yaml:"gracePeriod"`
}

// Sender is one trusted sender: its name (for logs and audit) and its
// Ed25519 public key file.
type Sender struct {
	Name      string `yaml:"name"`
	PublicKey string `yaml:"publicKey"`
}

// ServiceBus is the `servicebus` section.
type ServiceBus struct {
	ConnectionString *SecretRef  `yaml:"connectionString"`
	Namespace        string      `yaml:"namespace"`
	Credential       *Credential `yaml:"credential"`
	Queue            string      `yaml:"queue"`
	Sessions         bool        `yaml:"sessions"`
	MaxConcurrent    int         `yaml:"maxConcurrent"`
	// SettleTimeout bounds every complete/abandon/dead-letter and reply send:
	// after a dropped connection such a call can otherwise block for good.
	SettleTimeout Duration `yaml:"settleTimeout"`
	// SessionIdleTimeout is how long a held session waits for its next
	// message before it is released for other agents.
	SessionIdleTimeout Duration `yaml:"sessionIdleTimeout"`
	Retry              Retry    `yaml:"retry"`
	// Transport is amqp (AMQP over TLS, TCP 5671) or websockets (AMQP over
	// WebSockets over TLS, TCP 443, the only one an HTTP proxy can carry).
	Transport string `yaml:"transport"`
	// TLS adds a private CA for the namespace and the Entra ID authority.
	TLS BusTLS `yaml:"tls"`
	// Proxy is an http:// proxy URL for every host, or "none" for direct
	// connections; empty takes HTTPS_PROXY and NO_PROXY from the
	// environment. Only websockets can go through a proxy.
	Proxy string `yaml:"proxy"`
	// ProxyAuth is basic authentication for Proxy.
	ProxyAuth *ProxyAuth `yaml:"proxyAuth"`
	// Watchdog rebuilds the connection and receivers when the broker has
	// not answered for this long while the agent should be receiving: some
	// receivers stop delivering without an error.
	Watchdog Duration `yaml:"watchdog"`
	// ReplyQueues are the senders' reply queues, for `wbagent check` to
	// prove the Send right on; replies always go to each request's ReplyTo.
	ReplyQueues []string `yaml:"replyQueues"`
}

// BusTLS configures TLS to the namespace. Verification is never optional.
type BusTLS struct {
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `yaml:"caFile"`
}

// ProxyAuth is the proxy's basic authentication.
type ProxyAuth struct {
	User     string     `yaml:"user"`
	Password *SecretRef `yaml:"password"`
}

// Credential selects an Entra ID credential for a namespace without a
// connection string.
type Credential struct {
	Type         string     `yaml:"type"` // default | managedIdentity | clientSecret | clientCertificate | workloadIdentity
	TenantID     string     `yaml:"tenantId"`
	ClientID     string     `yaml:"clientId"`
	ClientSecret *SecretRef `yaml:"clientSecret"`
	// CertificateFile is the PEM (certificate and private key) or PKCS#12
	// file of a clientCertificate credential.
	CertificateFile string `yaml:"certificateFile"`
	// CertificatePassword decrypts CertificateFile when it is protected.
	CertificatePassword *SecretRef `yaml:"certificatePassword"`
	// TokenFile is the federated token of a workloadIdentity credential;
	// empty takes AZURE_FEDERATED_TOKEN_FILE.
	TokenFile string `yaml:"tokenFile"`
	// AuthorityHost is the Entra ID authority (https://login.microsoftonline.com/
	// when empty), e.g. https://login.microsoftonline.us/ for a national cloud.
	AuthorityHost string `yaml:"authorityHost"`
}

// Retry is the SDK's retry policy for connection and link recovery.
type Retry struct {
	MaxRetries    int      `yaml:"maxRetries"`
	RetryDelay    Duration `yaml:"retryDelay"`
	MaxRetryDelay Duration `yaml:"maxRetryDelay"`
}

// Directory is the `directory` section.
type Directory struct {
	Domains        []Domain `yaml:"domains"`
	Scope          Scope    `yaml:"scope"`
	HistoryOnReset string   `yaml:"historyOnReset"` // auto | require | off
	// Timeout bounds every LDAP operation.
	Timeout Duration `yaml:"timeout"`
	// PoolSize is the number of connections kept per domain.
	PoolSize int `yaml:"poolSize"`
}

// Domain is one AD domain the agent writes to.
type Domain struct {
	Name    string   `yaml:"name"`
	NetBIOS string   `yaml:"netbios"`
	BaseDN  string   `yaml:"baseDN"`
	Servers []string `yaml:"servers"`
	// Discover finds the domain controllers by DNS SRV instead of Servers.
	Discover bool `yaml:"discover"`
	// Resolver is a DNS server (host:port) for discovery; empty = the system's.
	Resolver string `yaml:"resolver"`
	// GlobalCatalog lists gc:// or ldaps://host:3269 servers for forest-wide
	// lookups; empty = no global catalog search.
	GlobalCatalog []string `yaml:"globalCatalog"`
	TLS           TLS      `yaml:"tls"`
	Bind          Bind     `yaml:"bind"`
}

// TLS configures the directory connection's TLS.
type TLS struct {
	CAFile     string `yaml:"caFile"`
	ServerName string `yaml:"serverName"`
	StartTLS   bool   `yaml:"startTLS"`
	// PinSHA256 trusts a DC by the base64 SHA-256 of a public key
	// (SubjectPublicKeyInfo) in the chain it presents, instead of or as
	// well as CAFile.
	PinSHA256 []string `yaml:"pinSHA256"`
}

// Bind says how the agent authenticates to the directory.
type Bind struct {
	Method   string     `yaml:"method"` // simple | kerberos | sspi
	User     string     `yaml:"user"`
	Password *SecretRef `yaml:"password"`
	Keytab   string     `yaml:"keytab"`
	Krb5Conf string     `yaml:"krb5conf"`
	Realm    string     `yaml:"realm"`
}

// Scope limits which accounts the agent may write.
type Scope struct {
	IncludeOUs        []string `yaml:"includeOUs"`
	ProtectAdminCount *bool    `yaml:"protectAdminCount"`
	ProtectedGroups   []string `yaml:"protectedGroups"`
	ProtectedAccounts []string `yaml:"protectedAccounts"`
	AllowDisabled     bool     `yaml:"allowDisabled"`
	// EntireDomain lets the agent write anywhere in the configured domains
	// when includeOUs is empty; without it an empty includeOUs is an error,
	// so forgetting the scope never means "everything".
	EntireDomain bool `yaml:"entireDomain"`
	// AllowPrivileged names built-in privileged classes (PrivilegedNames)
	// the agent may write after all; every other one is always refused.
	AllowPrivileged []string `yaml:"allowPrivileged"`
}

// Requests holds the protocol's time limits and the retry budget.
type Requests struct {
	MaxClockSkew Duration `yaml:"maxClockSkew"`
	MaxLifetime  Duration `yaml:"maxLifetime"`
	RetryBudget  Duration `yaml:"retryBudget"`
}

// Audit is where the audit trail goes.
type Audit struct {
	File     string `yaml:"file"`
	EventLog bool   `yaml:"eventLog"`
	// Rotate starts a new file by size or age; the hash chain continues.
	Rotate AuditRotate `yaml:"rotate"`
	// AggregateRejections is the window in which the rejections of messages
	// nobody trusted get one line per sender kid and reason, plus a count.
	AggregateRejections Duration `yaml:"aggregateRejections"`
}

// AuditRotate is when the audit file is rotated.
type AuditRotate struct {
	MaxSizeMB int      `yaml:"maxSizeMB"`
	MaxAge    Duration `yaml:"maxAge"`
}

// Log configures the operational log.
type Log struct {
	Level  string   `yaml:"level"`
	Format string   `yaml:"format"`
	File   *LogFile `yaml:"file"`
}

// LogFile is a size-rotated log file.
type LogFile struct {
	Path       string `yaml:"path"`
	MaxSizeMB  int    `yaml:"maxSizeMB"`
	MaxBackups int    `yaml:"maxBackups"`
	MaxAgeDays int    `yaml:"maxAgeDays"`
}

// HTTP is the health and metrics listener.
type HTTP struct {
	Listen string `yaml:"listen"`
	// ReadyDetails shows why each readiness check fails to every /readyz
	// caller, not only loopback ones.
	ReadyDetails bool `yaml:"readyDetails"`
}

// Duration is a time.Duration written as Go duration text ("45s", "2m").
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses duration text and refuses bare numbers, which would
// otherwise be read as nanoseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("expected a duration such as 45s or 2m")
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("%q is not a duration: write it like 45s, 2m or 1h30m", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalJSON writes the duration as text, for the redacted config dump.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}
