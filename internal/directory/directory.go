package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"wbagent/internal/wire"
)

// Target names an account in one of the forms of protocol-v1 §4; it is
// the vocabulary's wire.Target, shared with protocol and writeback.
type Target = wire.Target

// Change is one validated writeback request (wire's, shared with
// writeback).
type Change = wire.Change

// Outcome is what Apply did (wire.Applied, which writeback reads as is).
// Err is for logs: it never holds a secret.
type Outcome = wire.Applied

// Directory applies writebacks to the configured domains.
type Directory struct {
	opts    Options
	log     *zap.Logger
	domains []*domainState
	catalog *pool // forest-wide global catalog, nil when none is configured
}

// domainState is one configured domain and its connections.
type domainState struct {
	cfg  *Domain
	pool *pool

	mu      sync.Mutex
	baseDN  string
	pdc     string // PDC emulator's dNSHostName
	pdcAt   time.Time
	primary map[uint32]groupVerdict // primaryGroupID → protection verdict
	priv    *privilegedSet          // built-in privileged groups, by SID
}

// New checks opts and prepares the connection pools; it does not connect
// (Ready does).
func New(opts Options, log *zap.Logger) (*Directory, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	d := &Directory{opts: o, log: log.With(zap.String("component", "directory"))}
	for i := range d.opts.Domains {
		cfg := &d.opts.Domains[i]
		p, err := newPool(cfg.Name, &d.opts, cfg, cfg.Servers, false, d.log)
		if err != nil {
			return nil, fmt.Errorf("directory: domain %s: %w", cfg.Name, err)
		}
		ds := &domainState{cfg: cfg, pool: p, baseDN: cfg.BaseDN}
		d.domains = append(d.domains, ds)
		if d.catalog == nil && len(cfg.GlobalCatalog) > 0 && len(d.opts.Domains) > 1 {
			gc, err := newPool("global catalog", &d.opts, cfg, cfg.GlobalCatalog, true, d.log)
			if err != nil {
				return nil, fmt.Errorf("directory: domain %s: global catalog: %w", cfg.Name, err)
			}
			d.catalog = gc
		}
	}
	return d, nil
}

// Close closes every pooled connection. In-flight calls finish on their
// own connections.
func (d *Directory) Close() {
	for _, ds := range d.domains {
		ds.pool.close()
	}
	if d.catalog != nil {
		d.catalog.close()
	}
}

// Ready reports whether a domain controller of every domain accepts a bind
// and shows the built-in privileged groups by SID, for /readyz: without
// those groups every write fails closed, which readiness then says.
func (d *Directory) Ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	var errs []error
	for _, ds := range d.domains {
		pc, err := ds.pool.get(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s: %w", ds.cfg.Name, err))
			continue
		}
		setDeadline(ctx, pc.conn)
		_, err = d.privileged(ctx, pc, ds)
		ds.pool.put(pc, err == nil || !isNetwork(err))
		if err != nil {
			errs = append(errs, fmt.Errorf("domain %s: built-in protection: %w", ds.cfg.Name, err))
		}
	}
	return errors.Join(errs...)
}

// maxAttempts bounds how often one call is retried on another connection
// after a connection failure.
const maxAttempts = 3

// step is one unit of work on a borrowed connection; sent reports whether
// it had sent a write when it failed.
type step func(pc *pconn) (sent bool, err error)

// withConn runs f on a connection of p. A connection failure before f sent
// a write is retried on a fresh connection (the failed server is dropped
// from the pool and tried last); after a write it is returned, because the
// write may have happened.
func (d *Directory) withConn(ctx context.Context, p *pool, f step) error {
	var last error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		pc, err := p.get(ctx)
		if err != nil {
			return err
		}
		setDeadline(ctx, pc.conn)
		c := pc.conn
		stop := context.AfterFunc(ctx, func() { c.Close() })
		sent, err := f(pc)
		stop()
		if err == nil || !isNetwork(err) {
			p.put(pc, true)
			return err
		}
		p.put(pc, false)
		p.markDown(pc.srv.url)
		last = orCtx(ctx, err)
		if sent || ctx.Err() != nil {
			return &sentError{err: last, sent: sent, dc: pc.srv.url}
		}
		d.log.Warn("directory connection failed; retrying", zap.String("dc", pc.srv.url), zap.Int("attempt", attempt+1), zap.Error(err))
	}
	return last
}

// sentError reports a connection failure, noting whether a write had been
// sent on it.
type sentError struct {
	err  error
	sent bool
	dc   string
}

func (e *sentError) Error() string { return e.err.Error() }
func (e *sentError) Unwrap() error { return e.err }

// domainFor finds the configured domain of a DNS or NetBIOS name.
func (d *Directory) domainFor(name string) *domainState {
	for _, ds := range d.domains {
		if strings.EqualFold(ds.cfg.Name, name) || (ds.cfg.NetBIOS != "" && strings.EqualFold(ds.cfg.NetBIOS, name)) {
			return ds
		}
	}
	return nil
}

// domainOfDN finds the configured domain whose naming context holds dn
// (the longest match, for child domains).
func (d *Directory) domainOfDN(dn string) *domainState {
	parsed, err := ldap.ParseDN(dn)
	if err != nil {
		return nil
	}
	var best *domainState
	bestLen := -1
	for _, ds := range d.domains {
		base := ds.base("")
		if base == "" {
			base = dnFromDomainName(ds.cfg.Name)
		}
		b, err := ldap.ParseDN(base)
		if err != nil {
			continue
		}
		if (b.AncestorOfFold(parsed) || b.EqualFold(parsed)) && len(b.RDNs) > bestLen {
			best, bestLen = ds, len(b.RDNs)
		}
	}
	return best
}

// base returns the domain's naming context: configured, else learnt from
// the rootDSE of learnt.
func (ds *domainState) base(learnt string) string {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.baseDN == "" && learnt != "" {
		ds.baseDN = learnt
	}
	return ds.baseDN
}

// dnFromDomainName turns corp.example.test into DC=corp,DC=example,DC=test.
func dnFromDomainName(name string) string {
	parts := strings.Split(strings.TrimSuffix(name, "."), ".")
	for i, p := range parts {
		parts[i] = "DC=" + ldap.EscapeDN(p)
	}
	return strings.Join(parts, ",")
}
