package directory

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"wbagent/internal/logging"
)

// pconn is a pooled connection and what it learnt at connect time.
type pconn struct {
	conn     *ldap.Conn
	srv      *server
	root     rootDSE
	lastUsed time.Time
}

// pool holds the connections of one domain (or one global catalog): at
// most size at a time, idle ones reused, servers tried in order starting
// with the last that worked.
type pool struct {
	name   string // for logs and errors
	opts   *Options
	domain *Domain
	dialer *dialer
	log    *zap.Logger
	static []string // configured server URLs
	gc     bool     // a global catalog pool: read only, no discovery

	slots chan struct{}

	mu         sync.Mutex
	idle       []*pconn
	preferred  string // URL of the last server that worked
	discovered []string
	discAt     time.Time
	down       map[string]time.Time // server URL → when it failed
	closed     bool
}

// downFor is how long a failed server is tried only after the others.
const downFor = 30 * time.Second

func newPool(name string, opts *Options, d *Domain, urls []string, gc bool, log *zap.Logger) (*pool, error) {
	b, err := newBinder(d)
	if err != nil {
		return nil, err
	}
	return &pool{
		name: name, opts: opts, domain: d, log: log, static: urls, gc: gc,
		dialer: &dialer{opts: opts, domain: d, binder: b},
		slots:  make(chan struct{}, opts.PoolSize),
	}, nil
}

var errClosed = errors.New("directory is closed")

// get borrows a healthy connection, dialling (with failover) when no idle
// one is left. The caller must put it back.
func (p *pool) get(ctx context.Context) (*pconn, error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free connection to %s: %w", p.name, ctx.Err())
	}
	for {
		pc, err := p.takeIdle()
		if err != nil {
			<-p.slots
			return nil, err
		}
		if pc == nil {
			break
		}
		if p.healthy(ctx, pc) {
			return pc, nil
		}
		pc.conn.Close()
	}
	pc, err := p.dial(ctx)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return pc, nil
}

func (p *pool) takeIdle() (*pconn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, errClosed
	}
	if n := len(p.idle); n > 0 {
		pc := p.idle[n-1]
		p.idle = p.idle[:n-1]
		return pc, nil
	}
	return nil, nil
}

// healthy reports whether an idle connection can be used: not closed by
// the server, and answering a rootDSE read when it has idled long.
func (p *pool) healthy(ctx context.Context, pc *pconn) bool {
	if pc.conn.IsClosing() {
		return false
	}
	if p.opts.Now().Sub(pc.lastUsed) < p.opts.IdleCheck {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, p.opts.DialTimeout)
	defer cancel()
	setDeadline(ctx, pc.conn)
	_, err := readRootDSE(pc.conn)
	return err == nil
}

// put returns a connection; a broken one (reuse false) is closed.
func (p *pool) put(pc *pconn, reuse bool) {
	defer func() { <-p.slots }()
	if !reuse || pc.conn.IsClosing() {
		pc.conn.Close()
		return
	}
	pc.lastUsed = p.opts.Now()
	pc.conn.SetTimeout(0)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		pc.conn.Close()
		return
	}
	p.idle = append(p.idle, pc)
}

// markDown closes every idle connection to the server srvURL after it
// failed, and moves it to the end of the list for a while.
func (p *pool) markDown(srvURL string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.down == nil {
		p.down = map[string]time.Time{}
	}
	p.down[srvURL] = p.opts.Now()
	keep := p.idle[:0]
	for _, pc := range p.idle {
		if pc.srv.url == srvURL {
			pc.conn.Close()
			continue
		}
		keep = append(keep, pc)
	}
	p.idle = keep
	if p.preferred == srvURL {
		p.preferred = ""
	}
}

func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, pc := range p.idle {
		pc.conn.Close()
	}
	p.idle = nil
}

// servers lists the URLs to try, the last good one first.
func (p *pool) servers(ctx context.Context) ([]string, error) {
	urls := append([]string{}, p.static...)
	if p.domain.Discover && !p.gc {
		found, err := p.discover(ctx)
		if err != nil && len(urls) == 0 {
			return nil, err
		}
		for _, u := range found {
			if !containsFold(urls, u) {
				urls = append(urls, u)
			}
		}
	}
	p.mu.Lock()
	pref := p.preferred
	now := p.opts.Now()
	rank := func(u string) int {
		switch {
		case u == pref:
			return 0
		case now.Sub(p.down[u]) < downFor:
			return 2
		default:
			return 1
		}
	}
	sort.SliceStable(urls, func(i, j int) bool { return rank(urls[i]) < rank(urls[j]) })
	p.mu.Unlock()
	if len(urls) == 0 {
		return nil, fmt.Errorf("%s: no servers", p.name)
	}
	return urls, nil
}

// discover returns the DCs of the domain's SRV records, cached for
// DiscoverTTL.
func (p *pool) discover(ctx context.Context) ([]string, error) {
	p.mu.Lock()
	if p.discovered != nil && p.opts.Now().Sub(p.discAt) < p.opts.DiscoverTTL {
		defer p.mu.Unlock()
		return p.discovered, nil
	}
	p.mu.Unlock()
	urls, rejected, err := discoverTrusted(ctx, p.opts.Resolver, p.domain)
	if len(rejected) > 0 {
		p.log.Warn("DNS SRV named domain controllers outside the domain; refused", zap.String(logging.FieldDomain, p.domain.Name),
			zap.Strings("targets", rejected))
	}
	if err != nil {
		return nil, err
	}
	p.log.Info("discovered domain controllers", zap.String(logging.FieldDomain, p.domain.Name), zap.Strings("servers", urls))
	p.mu.Lock()
	p.discovered, p.discAt = urls, p.opts.Now()
	p.mu.Unlock()
	return urls, nil
}

// discoverServers looks up _ldap._tcp.dc._msdcs.<domain> and returns
// ldaps:// URLs (ldap:// with StartTLS) ordered by priority, then weight,
// keeping only the targets discovery may trust (see discoverTrusted).
func discoverServers(ctx context.Context, r Resolver, d *Domain) ([]string, error) {
	urls, _, err := discoverTrusted(ctx, r, d)
	return urls, err
}

// discoverTrusted is discoverServers that also names the SRV targets it
// refused. Whoever can answer or spoof DNS chooses the SRV targets, so a
// target counts only when it lies inside the domain's own DNS name or is
// the host of a configured server; the certificate it shows must then
// pass the domain's own trust anchor (discoveryAnchored).
func discoverTrusted(ctx context.Context, r Resolver, d *Domain) (urls, rejected []string, err error) {
	name := "dc._msdcs." + d.Name
	_, srvs, err := r.LookupSRV(ctx, "ldap", "tcp", name)
	if err != nil {
		return nil, nil, fmt.Errorf("look up DNS SRV _ldap._tcp.%s: %w", name, err)
	}
	if len(srvs) == 0 {
		return nil, nil, fmt.Errorf("DNS SRV _ldap._tcp.%s lists no domain controllers", name)
	}
	sort.SliceStable(srvs, func(i, j int) bool {
		if srvs[i].Priority != srvs[j].Priority {
			return srvs[i].Priority < srvs[j].Priority
		}
		return srvs[i].Weight > srvs[j].Weight
	})
	urls = make([]string, 0, len(srvs))
	for _, s := range srvs {
		host := strings.TrimSuffix(s.Target, ".")
		if !srvTargetTrusted(d, host) {
			rejected = append(rejected, host)
			continue
		}
		if d.TLS.StartTLS {
			urls = append(urls, "ldap://"+net.JoinHostPort(host, strconv.Itoa(int(s.Port))))
		} else {
			urls = append(urls, "ldaps://"+net.JoinHostPort(host, "636"))
		}
	}
	if len(urls) == 0 {
		return nil, rejected, fmt.Errorf("DNS SRV _ldap._tcp.%s names only hosts outside %s (%s): refused; list the domain controllers in servers",
			name, d.Name, strings.Join(rejected, ", "))
	}
	return urls, rejected, nil
}

// srvTargetTrusted reports whether host, an SRV target, is the domain's
// name, lies below it, or is the host of a configured server.
func srvTargetTrusted(d *Domain, host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	dom := strings.ToLower(strings.TrimSuffix(d.Name, "."))
	if h == "" || dom == "" {
		return false
	}
	if h == dom || strings.HasSuffix(h, "."+dom) {
		return true
	}
	for _, u := range d.Servers {
		if srv, err := parseServer(u, d.TLS.StartTLS); err == nil && strings.EqualFold(srv.host, h) {
			return true
		}
	}
	return false
}

// discoveryAnchored reports whether servers found by DNS SRV can prove
// they are the domain's: the domain names a CA file of its own (the system
// roots vouch for any public name, not for a DC) or pins the DCs' keys.
// This is the one place that decides it.
func discoveryAnchored(t TLS) bool {
	return t.CAFile != "" || len(t.PinSHA256) > 0
}

// dial tries each server in turn until one connects and binds. A refused
// bind is final (every DC of the domain would say the same); connection
// failures move on to the next server.
func (p *pool) dial(ctx context.Context) (*pconn, error) {
	urls, err := p.servers(ctx)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, u := range urls {
		if ctx.Err() != nil {
			errs = append(errs, ctx.Err())
			break
		}
		srv, err := parseServer(u, p.domain.TLS.StartTLS)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn, root, err := p.dialer.dial(ctx, srv)
		if err == nil {
			p.mu.Lock()
			// Moving off a server that just failed, or off the one in use
			// before, is a failover.
			failedOver := len(errs) > 0 || (p.preferred != u && p.preferred != "")
			p.preferred = u
			delete(p.down, u)
			p.mu.Unlock()
			if failedOver {
				p.log.Warn("failed over to another domain controller", zap.String(logging.FieldDomain, p.name), zap.String(logging.FieldDC, u))
				if p.opts.OnFailover != nil {
					p.opts.OnFailover(p.name, u)
				}
			}
			return &pconn{conn: conn, srv: srv, root: root, lastUsed: p.opts.Now()}, nil
		}
		p.log.Warn("domain controller unreachable", zap.String(logging.FieldDomain, p.name), zap.String(logging.FieldDC, u), zap.Error(err))
		errs = append(errs, err)
		if isNetwork(err) {
			p.markDown(u)
		}
		if !isNetwork(err) {
			return nil, err
		}
	}
	return nil, &connectError{stage: "all servers", srv: p.name, err: errors.Join(errs...)}
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}
