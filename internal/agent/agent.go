package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/bus"
	"wbagent/internal/config"
	"wbagent/internal/directory"
	"wbagent/internal/ledger"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/telemetry"
	"wbagent/internal/writeback"
)

// Deps are what an Agent takes from the process around it. Logger,
// Getenv and Clock are required: a missing one is an error, not a hidden
// default.
type Deps struct {
	// Logger receives the agent's operational logs.
	Logger *zap.Logger
	// Getenv resolves {env: NAME} secrets; os.Getenv outside tests.
	Getenv func(string) string
	// Clock is the agent's clock for request times, retry waits, the
	// ledger and audit times (writeback.SystemClock{} in production). It
	// must run (an offset clock, not a frozen one) or retry budgets never
	// end. The directory keeps the system clock for its connection
	// housekeeping.
	Clock writeback.Clock
	// Directory, when set, replaces the Active Directory the config
	// describes (the capacity benchmark's instant directory); the
	// directory section is then not used.
	Directory writeback.Directory
}

// Agent is one running writeback agent: keys, directory, ledger, audit
// trail, the writeback handler, the Service Bus consumer, metrics and the
// HTTP endpoints, built from one config. New builds it without contacting
// any server, Start begins serving and consuming, and Stop runs the one
// ordered shutdown: stop intake, finish or abandon in-flight writebacks
// within the grace period, stop HTTP, flush the audit trail, close the
// ledger, the directory and the bus, destroy secrets.
type Agent struct {
	cfg      *config.Config
	log      *zap.Logger
	registry *prometheus.Registry
	metrics  *telemetry.Metrics
	dir      *directory.Directory
	port     writeback.Directory
	led      *ledger.Store
	aud      *audit.Writer
	// agg aggregates rejections of untrusted messages before they reach
	// aud; nil when audit.aggregateRejections is off.
	agg     *audit.Aggregator
	handler *writeback.Handler
	// consumer owns the Service Bus client, which its watchdog rebuilds
	// when the broker falls silent.
	consumer *bus.Watched
	http     *telemetry.Server
	// secrets are destroyed once the agent stops: the directory keeps
	// bind passwords for re-binding until then.
	secrets []*secret.Secret
	signer  *protocol.SigningKey
	// sinks counts the audit destinations besides the file.
	sinks int

	// mu serialises Start and Stop, so a stop that arrives during start
	// waits for it and then stops everything start began.
	mu      sync.Mutex
	started bool
	stopped bool
	fatal   chan error
}

// New builds an agent from cfg: keys, secrets and local files are loaded
// here, so a broken installation fails at once with its own error. Nothing
// waits for a server: the directory and the bus connect on first use, so a
// start is not held up by a dead DC. On error, whatever was built is
// closed.
func New(_ context.Context, cfg *config.Config, deps Deps) (_ *Agent, err error) {
	switch {
	case cfg == nil:
		return nil, errors.New("agent: no config")
	case deps.Logger == nil:
		return nil, errors.New("agent: no logger")
	case deps.Getenv == nil:
		return nil, errors.New("agent: no environment lookup")
	case deps.Clock == nil:
		return nil, errors.New("agent: no clock")
	}
	log := deps.Logger
	a := &Agent{cfg: cfg, log: log, registry: telemetry.NewRegistry(), fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			a.close()
		}
	}()
	if a.metrics, err = telemetry.NewMetrics(a.registry); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	opener, decKeys, err := loadOpener(cfg)
	if err != nil {
		return nil, err
	}
	seal, err := writeback.NewSessionSeal(decKeys)
	if err != nil {
		return nil, fmt.Errorf("agent.decryptionKeys: %w", err)
	}
	if a.signer, err = protocol.LoadSigningKey(cfg.Agent.SigningKey); err != nil {
		return nil, fmt.Errorf("agent.signingKey: %w", err)
	}
	a.led, err = ledger.Open(cfg.Agent.StateDir, ledger.Options{
		Retention:     cfg.Requests.MaxLifetime.D() + cfg.Requests.MaxClockSkew.D(),
		PruneInterval: config.LedgerPruneInterval,
		LockTimeout:   config.LedgerLockTimeout,
		Now:           deps.Clock.Now,
		Logger:        log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent.stateDir: %w", err)
	}
	sinks, err := auditSinks(cfg)
	if err != nil {
		return nil, err
	}
	a.sinks = len(sinks)
	a.aud, err = audit.Open(cfg.Audit.File, audit.Options{Now: deps.Clock.Now, Logger: log, Sinks: sinks,
		MaxSize: int64(cfg.Audit.Rotate.MaxSizeMB) << 20, MaxAge: cfg.Audit.Rotate.MaxAge.D()})
	if err != nil {
		for _, s := range sinks {
			s.Close()
		}
		return nil, fmt.Errorf("audit.file: %w", err)
	}
	var rejections audit.Recorder
	if d := cfg.Audit.AggregateRejections.D(); d > 0 {
		a.agg, err = audit.NewAggregator(a.aud, audit.AggregateOptions{Interval: d, MaxKeys: config.AuditAggregateMaxKeys, Now: deps.Clock.Now, Logger: log})
		if err != nil {
			return nil, err
		}
		rejections = a.agg
	}
	a.port = deps.Directory
	if a.port == nil {
		dopts, err := DirectoryOptions(cfg, deps.Getenv)
		a.secrets = append(a.secrets, BindPasswords(dopts)...)
		if err != nil {
			return nil, err
		}
		metrics := a.metrics
		dopts.OnFailover = func(string, string) { metrics.DirectoryFailover() }
		if a.dir, err = directory.New(dopts, log); err != nil {
			return nil, err
		}
		a.port = a.dir
	}
	a.handler, err = writeback.New(writeback.Options{
		Agent:       cfg.Agent.Name,
		RetryBudget: cfg.Requests.RetryBudget.D(),

		BackoffInitial:   config.WritebackBackoffInitial,
		BackoffMax:       config.WritebackBackoffMax,
		PostWriteTimeout: config.WritebackPostWriteTimeout,

		Opener:     opener,
		Directory:  a.port,
		Ledger:     a.led,
		Audit:      a.aud,
		SigningKey: a.signer,
		Seal:       seal,
		Queue:      cfg.ServiceBus.Queue,
		Clock:      deps.Clock,
		Logger:     log,

		OnStateRefused: a.metrics.SessionStateRefused,
		Rejections:     rejections,
	})
	if err != nil {
		return nil, err
	}
	conn, err := BusConnection(cfg, deps.Getenv)
	a.secrets = append(a.secrets, conn.Secrets()...)
	if err != nil {
		return nil, err
	}
	a.consumer, err = bus.NewWatched(conn, a.handler, bus.Options{
		Queue:              cfg.ServiceBus.Queue,
		Namespace:          conn.NamespaceName(),
		Sessions:           cfg.ServiceBus.Sessions,
		MaxConcurrent:      cfg.ServiceBus.MaxConcurrent,
		SettleTimeout:      cfg.ServiceBus.SettleTimeout.D(),
		SessionIdleTimeout: cfg.ServiceBus.SessionIdleTimeout.D(),
		AcceptTimeout:      config.BusAcceptTimeout,
		ErrorBackoff:       config.BusErrorBackoff,
		Intake:             a.handler.Intake,
		Metrics:            a.metrics,
		Logger:             log,
	}, cfg.ServiceBus.Watchdog.D())
	if err != nil {
		return nil, err
	}
	if cfg.HTTP.Listen != "" {
		a.http, err = telemetry.NewServer(telemetry.ServerOptions{
			Addr: cfg.HTTP.Listen, Gatherer: a.registry, CheckTimeout: config.HTTPCheckTimeout,
			Logger:       log.With(zap.String(logging.FieldComponent, "http")),
			OnError:      func(err error) { a.fail(fmt.Errorf("http: %w", err)) },
			ReadyDetails: cfg.HTTP.ReadyDetails,
		})
		if err != nil {
			return nil, err
		}
		for name, check := range a.ReadyChecks() {
			a.http.AddCheck(name, check)
		}
	}
	return a, nil
}

// Components names the parts the agent was built from, in start order,
// each with the implementation in use: what a benchmark report shows to
// say which pipeline it measured.
func (a *Agent) Components() []string {
	dir := "directory=ldap"
	if a.dir == nil {
		dir = fmt.Sprintf("directory=%T", a.port)
	}
	c := []string{}
	if a.http != nil {
		c = append(c, "http="+a.cfg.HTTP.Listen)
	}
	c = append(c, "keys=protocol.Opener", "ledger="+a.cfg.Agent.StateDir,
		fmt.Sprintf("audit=%s(+%d sinks)", a.cfg.Audit.File, a.sinks), dir,
		"handler=writeback.Handler", fmt.Sprintf("bus=%s(sessions=%v,auth=%s)", a.cfg.ServiceBus.Queue, a.cfg.ServiceBus.Sessions, busAuth(a.cfg)),
		"metrics=telemetry.Metrics")
	return c
}

// HTTPAddr returns the address the HTTP endpoints listen on, empty when
// http.listen is off or before Start.
func (a *Agent) HTTPAddr() string {
	if a.http == nil {
		return ""
	}
	return a.http.Addr()
}

// busAuth names how the agent authenticates to Service Bus, never the
// secret itself.
func busAuth(cfg *config.Config) string {
	switch c := cfg.ServiceBus.Credential; {
	case cfg.ServiceBus.ConnectionString != nil:
		return "connectionString"
	case c == nil || c.Type == "":
		return "entra:default"
	default:
		return "entra:" + c.Type
	}
}

// Fatal delivers the first error after which the agent cannot go on; the
// caller then runs Stop and exits with an error.
func (a *Agent) Fatal() <-chan error { return a.fatal }

// fail reports err on Fatal; later errors are logged only.
func (a *Agent) fail(err error) {
	a.log.Error("wbagent cannot go on", zap.Error(err))
	select {
	case a.fatal <- err:
	default:
	}
}

// ErrStopped is what Start returns when Stop came first.
var ErrStopped = errors.New("agent: stopped before it started")

// Start serves the HTTP endpoints, then begins receiving, and returns at
// once. The HTTP endpoints start first and stop last, so /healthz and
// /readyz answer for the whole life of the pipeline. On error the caller
// still calls Stop, which releases everything.
func (a *Agent) Start(context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return ErrStopped
	}
	if a.started {
		return errors.New("agent: already started")
	}
	a.started = true
	if a.http != nil {
		if err := a.http.Start(); err != nil {
			return fmt.Errorf("start http: http.listen: %w", err)
		}
		a.log.Info("serving /healthz /readyz /metrics", zap.String(logging.FieldAddr, a.http.Addr()))
		a.log.Info("started", zap.String(logging.FieldComponent, "http"))
	}
	if err := a.consumer.Start(); err != nil {
		return fmt.Errorf("start pipeline: %w", err)
	}
	a.log.Info("started", zap.String(logging.FieldComponent, "pipeline"))
	a.log.Info("wbagent is running", zap.String(logging.FieldAgent, a.cfg.Agent.Name))
	return nil
}

// Stop is the one shutdown path, for signals, service stops, fatal errors
// and failed starts alike: no new message is taken; in-flight writebacks
// finish until ctx ends (the grace period) and the rest are abandoned for
// redelivery, never cut; then HTTP stops, the audit trail is flushed and
// closed, and the ledger, the directory and the bus are closed. It is safe
// on an agent that never started, and a second call returns at once.
func (a *Agent) Stop(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		return nil
	}
	a.stopped = true
	var errs []error
	if a.consumer != nil {
		errs = append(errs, a.consumer.Stop(ctx))
	}
	if a.http != nil {
		// The drain may have used the whole grace period; HTTP still gets
		// a moment to answer the requests it is serving.
		hctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		errs = append(errs, a.http.Shutdown(hctx))
		cancel()
	}
	errs = append(errs, a.close())
	return errors.Join(errs...)
}

// close releases everything New opened, the audit trail first (its last
// records are flushed while the directory and the bus are still open),
// then the ledger, the directory and the bus, and destroys the secrets.
func (a *Agent) close() error {
	var errs []error
	if a.agg != nil {
		// First: its pending summaries go to the audit file.
		errs = append(errs, a.agg.Close())
	}
	if a.aud != nil {
		errs = append(errs, a.aud.Close())
	}
	if a.led != nil {
		errs = append(errs, a.led.Close())
	}
	if a.dir != nil {
		a.dir.Close()
	}
	if a.consumer != nil {
		a.consumer.Close()
	}
	for _, s := range a.secrets {
		s.Destroy()
	}
	a.secrets = nil
	if a.signer != nil {
		a.signer.Destroy()
	}
	return errors.Join(errs...)
}

// ReadyChecks are the agent's readiness checks for /readyz: the agent is
// not ready while no DC answers, the bus does not answer, or the audit
// trail or the ledger cannot be written.
func (a *Agent) ReadyChecks() map[string]func(context.Context) error {
	dirReady := func(context.Context) error { return nil }
	if a.dir != nil {
		dirReady = a.dir.Ready
	}
	return map[string]func(context.Context) error{
		"directory":  dirReady,
		"servicebus": func(context.Context) error { return a.consumer.Ready() },
		"audit": func(ctx context.Context) error {
			return errors.Join(a.handler.Ready(), a.aud.Ready(ctx))
		},
		"state": a.handler.StateReady,
	}
}

// loadOpener loads the decryption keys and trusted sender keys; it returns
// the decryption keys too, from which the session-state seal is derived.
func loadOpener(cfg *config.Config) (*protocol.Opener, []*protocol.DecryptionKey, error) {
	var keys []*protocol.DecryptionKey
	for i, path := range cfg.Agent.DecryptionKeys {
		k, err := protocol.LoadDecryptionKey(path)
		if err != nil {
			return nil, nil, fmt.Errorf("agent.decryptionKeys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	var senders []ed25519.PublicKey
	for i, s := range cfg.Agent.TrustedSenders {
		pub, err := protocol.LoadPublicKey(s.PublicKey)
		if err != nil {
			return nil, nil, fmt.Errorf("agent.trustedSenders[%d] (%s): %w", i, s.Name, err)
		}
		senders = append(senders, pub)
	}
	o, err := protocol.NewOpener(keys, senders, protocol.Limits{
		MaxClockSkew: cfg.Requests.MaxClockSkew.D(),
		MaxLifetime:  cfg.Requests.MaxLifetime.D(),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("agent keys: %w", err)
	}
	return o, keys, nil
}

// DirectoryOptions maps the directory section onto directory.Options,
// resolving bind passwords. On error the passwords resolved so far are in
// the returned options, for the caller to destroy.
func DirectoryOptions(cfg *config.Config, getenv func(string) string) (directory.Options, error) {
	c := cfg.Directory
	o := directory.Options{
		HistoryOnReset: c.HistoryOnReset,
		Timeout:        c.Timeout.D(),
		PoolSize:       c.PoolSize,
		DialTimeout:    config.DirectoryDialTimeout,
		IdleCheck:      config.DirectoryIdleCheck,
		DiscoverTTL:    config.DirectoryDiscoverTTL,
		Scope: directory.Scope{
			IncludeOUs:        c.Scope.IncludeOUs,
			ProtectAdminCount: c.Scope.ProtectAdminCount == nil || *c.Scope.ProtectAdminCount,
			ProtectedGroups:   c.Scope.ProtectedGroups,
			ProtectedAccounts: c.Scope.ProtectedAccounts,
			AllowDisabled:     c.Scope.AllowDisabled,
			EntireDomain:      c.Scope.EntireDomain,
			AllowPrivileged:   c.Scope.AllowPrivileged,
		},
	}
	for i, d := range c.Domains {
		dom := directory.Domain{
			Name: d.Name, NetBIOS: d.NetBIOS, BaseDN: d.BaseDN,
			Servers: d.Servers, Discover: d.Discover, GlobalCatalog: d.GlobalCatalog,
			TLS: directory.TLS{CAFile: d.TLS.CAFile, ServerName: d.TLS.ServerName, StartTLS: d.TLS.StartTLS, PinSHA256: d.TLS.PinSHA256},
			Bind: directory.Bind{Method: d.Bind.Method, User: d.Bind.User, Keytab: d.Bind.Keytab,
				Krb5Conf: d.Bind.Krb5Conf, Realm: d.Bind.Realm},
		}
		if d.Bind.Password != nil {
			pw, err := d.Bind.Password.Resolve(getenv)
			if err != nil {
				return o, fmt.Errorf("directory.domains[%d].bind.password: %w", i, err)
			}
			dom.Bind.Password = pw
		}
		if d.Resolver != "" && o.Resolver == nil {
			// One resolver serves discovery for every domain.
			o.Resolver = dnsResolver(d.Resolver)
		}
		o.Domains = append(o.Domains, dom)
	}
	return o, nil
}

// BindPasswords lists the secrets inside o, so they can be destroyed.
func BindPasswords(o directory.Options) []*secret.Secret {
	var s []*secret.Secret
	for _, d := range o.Domains {
		if d.Bind.Password != nil {
			s = append(s, d.Bind.Password)
		}
	}
	return s
}

// dnsResolver asks the DNS server at addr (host:port) instead of the
// system's resolver.
func dnsResolver(addr string) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

// BusConnection maps the servicebus section onto a bus.Connection,
// resolving the connection string or building the Entra ID credential.
func BusConnection(cfg *config.Config, getenv func(string) string) (bus.Connection, error) {
	sb := cfg.ServiceBus
	conn := bus.Connection{
		Namespace:     sb.Namespace,
		ApplicationID: "wbagent/" + cfg.Agent.Name,
		Retry: azservicebus.RetryOptions{
			MaxRetries:    int32(sb.Retry.MaxRetries),
			RetryDelay:    sb.Retry.RetryDelay.D(),
			MaxRetryDelay: sb.Retry.MaxRetryDelay.D(),
		},
	}
	t, err := BusTransport(sb, getenv)
	conn.Transport = t
	if err != nil {
		return conn, err
	}
	if sb.ConnectionString != nil {
		cs, err := sb.ConnectionString.Resolve(getenv)
		if err != nil {
			return conn, fmt.Errorf("servicebus.connectionString: %w", err)
		}
		conn.ConnectionString = cs
		return conn, nil
	}
	cred, err := BusCredential(sb.Credential, conn.Transport, getenv)
	if err != nil {
		return conn, fmt.Errorf("servicebus.credential: %w", err)
	}
	conn.Credential = cred
	return conn, nil
}
