package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/bus"
	"wbagent/internal/config"
	"wbagent/internal/directory"
	"wbagent/internal/ledger"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/telemetry"
	"wbagent/internal/writeback"
)

// pipelineEnv is what the pipeline takes from the process around it.
type pipelineEnv struct {
	// getenv resolves {env: NAME} secrets; os.Getenv outside tests.
	getenv func(string) string
	// metrics records the pipeline's events; nil records nothing.
	metrics *telemetry.Metrics
	// clock is the agent's clock for request times, retry waits, the
	// ledger and audit times; nil is the system clock. It must run (an
	// offset clock, not a frozen one) or retry budgets never end. The
	// directory keeps the system clock for its connection housekeeping.
	clock writeback.Clock
}

// pipeline is the running writeback: keys, directory, ledger, audit trail,
// the writeback handler and the Service Bus consumer, built from the
// config. It is a component of the program: start begins consuming, stop
// drains and closes everything.
type pipeline struct {
	log      *zap.Logger
	dir      *directory.Directory
	led      *ledger.Store
	aud      *audit.Writer
	handler  *writeback.Handler
	client   *azservicebus.Client
	consumer *bus.Consumer
	// secrets are destroyed once the pipeline stops: the directory keeps
	// bind passwords for re-binding until then.
	secrets []*secret.Secret
	signer  *protocol.SigningKey
	closers []func() error
}

// startPipeline builds the pipeline and starts consuming; stop it with
// stop(ctx), where ctx bounds the grace period.
func startPipeline(ctx context.Context, cfg *config.Config, log *zap.Logger, env pipelineEnv) (*pipeline, error) {
	p, err := newPipeline(ctx, cfg, log, env)
	if err != nil {
		return nil, err
	}
	if err := p.start(ctx); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// newPipeline loads keys and opens every dependency, without receiving yet.
// Nothing here waits for a server: the directory and the bus connect on
// first use, so a service start is not held up by a dead DC.
func newPipeline(_ context.Context, cfg *config.Config, log *zap.Logger, env pipelineEnv) (_ *pipeline, err error) {
	if env.getenv == nil {
		return nil, errors.New("pipeline: no environment lookup")
	}
	if env.clock == nil {
		env.clock = writeback.SystemClock{}
	}
	p := &pipeline{log: log}
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	opener, err := loadOpener(cfg)
	if err != nil {
		return nil, err
	}
	if p.signer, err = protocol.LoadSigningKey(cfg.Agent.SigningKey); err != nil {
		return nil, fmt.Errorf("agent.signingKey: %w", err)
	}
	p.led, err = ledger.Open(cfg.Agent.StateDir, ledger.Options{
		Retention: cfg.Requests.MaxLifetime.D() + cfg.Requests.MaxClockSkew.D(),
		Now:       env.clock.Now,
		Logger:    log,
	})
	if err != nil {
		return nil, fmt.Errorf("agent.stateDir: %w", err)
	}
	p.closers = append(p.closers, p.led.Close)
	sinks, err := auditSinks(cfg)
	if err != nil {
		return nil, err
	}
	p.aud, err = audit.Open(cfg.Audit.File, audit.Options{Now: env.clock.Now, Logger: log, Sinks: sinks})
	if err != nil {
		for _, s := range sinks {
			s.Close()
		}
		return nil, fmt.Errorf("audit.file: %w", err)
	}
	p.closers = append(p.closers, p.aud.Close)
	dopts, err := directoryOptions(cfg, env.getenv)
	p.secrets = append(p.secrets, bindPasswords(dopts)...)
	if err != nil {
		return nil, err
	}
	dopts.OnFailover = func(string, string) { env.metrics.DirectoryFailover() }
	if p.dir, err = directory.New(dopts, log); err != nil {
		return nil, err
	}
	p.handler, err = writeback.New(writeback.Options{
		Agent:       cfg.Agent.Name,
		RetryBudget: cfg.Requests.RetryBudget.D(),
		Opener:      opener,
		Directory:   directoryPort{p.dir},
		Ledger:      p.led,
		Audit:       p.aud,
		SigningKey:  p.signer,
		Clock:       env.clock,
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	conn, err := busConnection(cfg, env.getenv)
	if conn.ConnectionString != nil {
		p.secrets = append(p.secrets, conn.ConnectionString)
	}
	if err != nil {
		return nil, err
	}
	if p.client, err = bus.NewClient(conn); err != nil {
		return nil, err
	}
	p.consumer, err = bus.New(p.client, p.handler, bus.Options{
		Queue:              cfg.ServiceBus.Queue,
		Namespace:          conn.NamespaceName(),
		Sessions:           cfg.ServiceBus.Sessions,
		MaxConcurrent:      cfg.ServiceBus.MaxConcurrent,
		SettleTimeout:      cfg.ServiceBus.SettleTimeout.D(),
		SessionIdleTimeout: cfg.ServiceBus.SessionIdleTimeout.D(),
		Metrics:            env.metrics,
		Logger:             log,
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// name implements component.
func (p *pipeline) name() string { return "pipeline" }

// start implements component: it begins receiving and returns at once.
func (p *pipeline) start(context.Context) error { return p.consumer.Start() }

// stop implements component: no new message is taken, in-flight
// writebacks finish until ctx ends, the rest are abandoned for redelivery,
// then every dependency is closed.
func (p *pipeline) stop(ctx context.Context) error {
	err := p.consumer.Stop(ctx)
	return errors.Join(err, p.close())
}

// close releases everything newPipeline opened, in reverse order.
func (p *pipeline) close() error {
	var errs []error
	if p.client != nil {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := p.client.Close(cctx); err != nil {
			p.log.Warn("closing the service bus connection", zap.Error(err))
		}
		cancel()
	}
	if p.dir != nil {
		p.dir.Close()
	}
	for i := len(p.closers) - 1; i >= 0; i-- {
		errs = append(errs, p.closers[i]())
	}
	p.closers = nil
	for _, s := range p.secrets {
		s.Destroy()
	}
	p.secrets = nil
	if p.signer != nil {
		p.signer.Destroy()
	}
	return errors.Join(errs...)
}

// readyChecks are the pipeline's readiness checks for /readyz: the agent
// is not ready while no DC answers, the bus does not answer, or the audit
// trail cannot be written.
func (p *pipeline) readyChecks() map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"directory":  p.dir.Ready,
		"servicebus": func(context.Context) error { return p.consumer.Ready() },
		"audit": func(ctx context.Context) error {
			return errors.Join(p.handler.Ready(), p.aud.Ready(ctx))
		},
	}
}

// loadOpener loads the decryption keys and trusted sender keys.
func loadOpener(cfg *config.Config) (*protocol.Opener, error) {
	var keys []*protocol.DecryptionKey
	for i, path := range cfg.Agent.DecryptionKeys {
		k, err := protocol.LoadDecryptionKey(path)
		if err != nil {
			return nil, fmt.Errorf("agent.decryptionKeys[%d]: %w", i, err)
		}
		keys = append(keys, k)
	}
	var senders []ed25519.PublicKey
	for i, s := range cfg.Agent.TrustedSenders {
		pub, err := protocol.LoadPublicKey(s.PublicKey)
		if err != nil {
			return nil, fmt.Errorf("agent.trustedSenders[%d] (%s): %w", i, s.Name, err)
		}
		senders = append(senders, pub)
	}
	o, err := protocol.NewOpener(keys, senders, protocol.Limits{
		MaxClockSkew: cfg.Requests.MaxClockSkew.D(),
		MaxLifetime:  cfg.Requests.MaxLifetime.D(),
	})
	if err != nil {
		return nil, fmt.Errorf("agent keys: %w", err)
	}
	return o, nil
}

// directoryOptions maps the directory section onto directory.Options,
// resolving bind passwords. On error the passwords resolved so far are in
// the returned options, for the caller to destroy.
func directoryOptions(cfg *config.Config, getenv func(string) string) (directory.Options, error) {
	c := cfg.Directory
	o := directory.Options{
		HistoryOnReset: c.HistoryOnReset,
		Timeout:        c.Timeout.D(),
		PoolSize:       c.PoolSize,
		Scope: directory.Scope{
			IncludeOUs:        c.Scope.IncludeOUs,
			ProtectAdminCount: c.Scope.ProtectAdminCount == nil || *c.Scope.ProtectAdminCount,
			ProtectedGroups:   c.Scope.ProtectedGroups,
			ProtectedAccounts: c.Scope.ProtectedAccounts,
			AllowDisabled:     c.Scope.AllowDisabled,
		},
	}
	for i, d := range c.Domains {
		dom := directory.Domain{
			Name: d.Name, NetBIOS: d.NetBIOS, BaseDN: d.BaseDN,
			Servers: d.Servers, Discover: d.Discover, GlobalCatalog: d.GlobalCatalog,
			TLS: directory.TLS{CAFile: d.TLS.CAFile, ServerName: d.TLS.ServerName, StartTLS: d.TLS.StartTLS},
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

// bindPasswords lists the secrets inside o, so they can be destroyed.
func bindPasswords(o directory.Options) []*secret.Secret {
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

// busConnection maps the servicebus section onto a bus.Connection,
// resolving the connection string or building the Entra ID credential.
func busConnection(cfg *config.Config, getenv func(string) string) (bus.Connection, error) {
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
	if sb.ConnectionString != nil {
		cs, err := sb.ConnectionString.Resolve(getenv)
		if err != nil {
			return conn, fmt.Errorf("servicebus.connectionString: %w", err)
		}
		conn.ConnectionString = cs
		return conn, nil
	}
	cred, err := busCredential(sb.Credential, getenv)
	if err != nil {
		return conn, fmt.Errorf("servicebus.credential: %w", err)
	}
	conn.Credential = cred
	return conn, nil
}

func busCredential(c *config.Credential, getenv func(string) string) (azcore.TokenCredential, error) {
	if c == nil {
		c = &config.Credential{Type: "default"}
	}
	switch c.Type {
	case "", "default":
		return azidentity.NewDefaultAzureCredential(nil)
	case "managedIdentity":
		var o azidentity.ManagedIdentityCredentialOptions
		if c.ClientID != "" {
			o.ID = azidentity.ClientID(c.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(&o)
	case "clientSecret":
		s, err := c.ClientSecret.Resolve(getenv)
		if err != nil {
			return nil, fmt.Errorf("clientSecret: %w", err)
		}
		defer s.Destroy()
		return azidentity.NewClientSecretCredential(c.TenantID, c.ClientID, s.Reveal(), nil)
	}
	return nil, fmt.Errorf("type %q is not known: use default, managedIdentity or clientSecret", c.Type)
}

// directoryPort adapts the directory to the writeback handler's interface.
type directoryPort struct{ d *directory.Directory }

func (p directoryPort) Apply(ctx context.Context, c writeback.Change) writeback.Applied {
	o := p.d.Apply(ctx, directory.Change{
		Op: string(c.Op), Target: directoryTarget(c.Target),
		Unlock: c.Unlock, MustChange: c.MustChange, New: c.New, Old: c.Old,
	})
	return writeback.Applied{
		Code: o.Code, Detail: o.Detail, Transient: o.Transient, Indeterminate: o.Indeterminate,
		DN: o.DN, ObjectGUID: o.ObjectGUID, DC: o.DC, ADCode: o.ADCode, Err: o.Err,
	}
}

func (p directoryPort) PwdLastSet(ctx context.Context, t protocol.Target) (time.Time, error) {
	return p.d.PwdLastSet(ctx, directoryTarget(t))
}

func directoryTarget(t protocol.Target) directory.Target {
	return directory.Target{ObjectGUID: t.ObjectGUID, ImmutableID: t.ImmutableID, UPN: t.UserPrincipalName,
		SAMAccountName: t.SAMAccountName, Domain: t.Domain}
}
