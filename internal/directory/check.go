package directory

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/go-ldap/ldap/v3"
)

// CheckRow is one line of `wbagent check`: what was tested, whether it
// passed, what was seen, and how to fix a failure.
type CheckRow struct {
	Name   string
	OK     bool
	Detail string
	Fix    string
	// Warn marks a passing row that needs attention (a legacy DC
	// certificate); its Fix says what to do.
	Warn bool
}

// Check tests, per domain, everything a writeback needs: DNS (SRV and host
// names), TCP, the TLS handshake and certificate, the bind, the rootDSE
// (naming context, policy hints) and the service account's rights on each
// scope OU. It connects fresh, outside any pool, and never writes.
func Check(ctx context.Context, opts Options) []CheckRow {
	o, err := opts.withDefaults()
	if err != nil {
		return []CheckRow{{Name: "directory: configuration", Detail: err.Error(), Fix: "correct the directory section of the config"}}
	}
	var rows []CheckRow
	for i := range o.Domains {
		rows = append(rows, checkDomain(ctx, &o, &o.Domains[i])...)
	}
	return rows
}

type checker struct {
	o      *Options
	d      *Domain
	prefix string
	rows   []CheckRow
}

func (c *checker) add(ok bool, name, detail, fix string) bool {
	r := CheckRow{Name: c.prefix + name, OK: ok, Detail: detail}
	if !ok {
		r.Fix = fix
	}
	c.rows = append(c.rows, r)
	return ok
}

func checkDomain(ctx context.Context, o *Options, d *Domain) []CheckRow {
	c := &checker{o: o, d: d, prefix: "directory " + d.Name + ": "}
	urls := append([]string{}, d.Servers...)
	if d.Discover {
		found, err := discoverServers(ctx, o.Resolver, d)
		if c.add(err == nil, "DNS SRV _ldap._tcp.dc._msdcs."+d.Name, detailOr(err, strings.Join(found, ", ")),
			"make the DCs' SRV records resolvable from this host (check /etc/resolv.conf points at AD DNS), or list servers explicitly and set discover: false") {
			for _, u := range found {
				if !containsFold(urls, u) {
					urls = append(urls, u)
				}
			}
		}
	}
	b, err := newBinder(d)
	if !c.add(err == nil, "bind method", detailOr(err, d.Bind.Method), "choose bind.method simple, kerberos, or sspi on Windows") {
		return c.rows
	}
	dl := &dialer{opts: o, domain: d, binder: b}
	var good *pconn
	for _, u := range urls {
		pc := c.server(ctx, dl, u)
		if pc == nil {
			continue
		}
		if good == nil {
			good = pc
		} else {
			pc.conn.Close()
		}
	}
	if good == nil {
		return c.rows
	}
	defer good.conn.Close()
	c.rights(ctx, good)
	c.protection(ctx, good)
	return c.rows
}

// server checks one DC from DNS to rootDSE and returns the bound
// connection, or nil after the first failing step.
func (c *checker) server(ctx context.Context, dl *dialer, u string) *pconn {
	srv, err := parseServer(u, c.d.TLS.StartTLS)
	if !c.add(err == nil, "server "+u, detailOr(err, "encrypted LDAP URL"), "use ldaps://host:636, or ldap://host:389 with tls.startTLS: true") {
		return nil
	}
	if net.ParseIP(srv.host) == nil {
		addrs, err := c.o.Resolver.LookupHost(ctx, srv.host)
		if !c.add(err == nil, "DNS "+srv.host, detailOr(err, strings.Join(addrs, ", ")),
			"make "+srv.host+" resolvable from this host (AD DNS or /etc/hosts), or use the DC's address with tls.serverName") {
			return nil
		}
	}
	dctx, cancel := context.WithTimeout(ctx, c.o.DialTimeout)
	raw, err := c.o.Dial(dctx, "tcp", srv.addr())
	cancel()
	if !c.add(err == nil, "TCP "+srv.addr(), detailOr(err, "connected"),
		"open TCP "+srv.port+" from this host to the DC (firewall), and check the DC is running") {
		return nil
	}
	raw.Close()

	dctx, cancel = context.WithTimeout(ctx, c.o.DialTimeout)
	defer cancel()
	conn, err := dl.open(dctx, srv)
	if err != nil {
		detail, fix := tlsDiagnosis(err)
		c.add(false, "TLS "+u, detail, fix)
		return nil
	}
	ok := false
	defer func() {
		if !ok {
			conn.Close()
		}
	}()
	c.tlsRow(u, srv, conn)
	setDeadline(dctx, conn)
	if err := dl.binder.bind(dctx, conn, srv); err != nil {
		c.add(false, "bind to "+u+" as "+dl.binder.who(), err.Error(), bindFix(err, c.d))
		return nil
	}
	c.add(true, "bind to "+u+" as "+dl.binder.who(), "bound", "")
	root, err := readRootDSE(conn)
	if !c.add(err == nil, "rootDSE of "+u, detailOr(err, "read"), "the DC did not answer a rootDSE read: check it is an AD DC") {
		return nil
	}
	if want := c.d.BaseDN; want != "" {
		wdn, err1 := ldap.ParseDN(want)
		gdn, err2 := ldap.ParseDN(root.namingContext)
		same := err1 == nil && err2 == nil && wdn.EqualFold(gdn)
		if !c.add(same, "naming context of "+u, "DC serves "+root.namingContext+", baseDN is "+want,
			"set baseDN to "+root.namingContext+" or point servers at a DC of "+want) {
			return nil
		}
	} else {
		c.add(true, "naming context of "+u, root.namingContext, "")
	}
	hints := root.policyHintsOID()
	switch {
	case hints != "":
		c.add(true, "policy hints on "+u, "supported ("+hints+"): resets enforce password history", "")
	case c.o.HistoryOnReset == HistoryRequire:
		c.add(false, "policy hints on "+u, "not advertised: historyOnReset: require refuses every reset on this DC",
			"use DCs on Windows Server 2008 R2 or newer, or set directory.historyOnReset: auto")
	default:
		c.add(true, "policy hints on "+u, "not advertised: resets do not check password history (historyOnReset: "+c.o.HistoryOnReset+")", "")
	}
	ok = true
	return &pconn{conn: conn, srv: srv, root: root}
}

// rights checks the service account is not privileged and holds the
// delegated rights on each scope OU of this domain.
func (c *checker) rights(ctx context.Context, pc *pconn) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	setDeadline(ctx, pc.conn)
	base := c.d.BaseDN
	if base == "" {
		base = pc.root.namingContext
	}
	self, err := whoAmI(pc.conn, base, c.d.Bind.User)
	if !c.add(err == nil, "service account", detailOr(err, ""), "bind as a user account of this domain") {
		return
	}
	sam := self.GetAttributeValue("sAMAccountName")
	if !c.add(self.GetAttributeValue("adminCount") != "1", "service account "+sam+" least privilege",
		"adminCount="+orDash(self.GetAttributeValue("adminCount"))+" ("+self.DN+")",
		"use a dedicated account outside Domain Admins and other protected groups, granted only the delegation script's rights") {
		return
	}
	sids := map[string]bool{"S-1-1-0": true, "S-1-5-11": true, sidString(self.GetRawAttributeValue("objectSid")): true}
	for _, g := range self.GetRawAttributeValues("tokenGroups") {
		sids[sidString(g)] = true
	}
	ous := c.scopeOUs(base)
	for _, ou := range ous {
		missing, err := missingRights(pc.conn, ou, sids)
		fix := fmt.Sprintf("grant the rights: on Samba `installer/ad/delegate-samba.sh --account %s --ou %q`; on Windows `installer/ad/Delegate-Writeback.ps1 -Account %s -OU %q`", sam, ou, sam, ou)
		switch {
		case err != nil:
			c.add(false, "rights on "+ou, err.Error(), "check the OU exists and the service account can read it; "+fix)
		case len(missing) > 0:
			c.add(false, "rights on "+ou, "missing for user objects: "+strings.Join(missing, ", "), fix)
		default:
			c.add(true, "rights on "+ou, "reset password, write lockoutTime, write pwdLastSet on user objects", "")
		}
	}
}

// scopeOUs are the scope's includeOUs inside this domain, or the domain
// root when the scope is the whole domain.
func (c *checker) scopeOUs(base string) []string {
	bdn, err := ldap.ParseDN(base)
	if err != nil {
		return []string{base}
	}
	var ous []string
	for _, ou := range c.o.Scope.IncludeOUs {
		p, err := ldap.ParseDN(ou)
		if err == nil && (bdn.AncestorOfFold(p) || bdn.EqualFold(p)) {
			ous = append(ous, ou)
		}
	}
	if len(c.o.Scope.IncludeOUs) == 0 {
		ous = []string{base}
	}
	return ous
}

// whoAmI reads the bound account: objectSid, tokenGroups, adminCount.
func whoAmI(conn *ldap.Conn, base, bindUser string) (*ldap.Entry, error) {
	var filters []string
	// Samba does not implement the Who Am I operation; Windows does.
	if res, err := conn.WhoAmI(nil); err == nil && res.AuthzID != "" {
		switch id := res.AuthzID; {
		case strings.HasPrefix(id, "dn:"):
			return readSelf(conn, strings.TrimPrefix(id, "dn:"))
		case strings.HasPrefix(id, "u:"):
			name := strings.TrimPrefix(id, "u:")
			if _, n, ok := strings.Cut(name, `\`); ok {
				name = n
			}
			filters = append(filters, "(sAMAccountName="+ldap.EscapeFilter(name)+")")
		}
	}
	if len(filters) == 0 {
		switch u := bindUser; {
		case strings.Contains(u, "="):
			return readSelf(conn, u)
		case strings.Contains(u, "@"):
			// An explicit UPN, else the implicit one (name@dnsdomain).
			name, _, _ := strings.Cut(u, "@")
			filters = append(filters, "(userPrincipalName="+ldap.EscapeFilter(u)+")", "(sAMAccountName="+ldap.EscapeFilter(name)+")")
		default:
			if _, n, ok := strings.Cut(u, `\`); ok {
				u = n
			}
			filters = append(filters, "(sAMAccountName="+ldap.EscapeFilter(u)+")")
		}
	}
	for _, f := range filters {
		entries, err := search(conn, base, "(&(objectCategory=person)"+f+")", []string{"1.1"})
		if err != nil {
			return nil, fmt.Errorf("find the service account: %w", err)
		}
		if len(entries) == 1 {
			return readSelf(conn, entries[0].DN)
		}
	}
	return nil, fmt.Errorf("find the service account %s in %s: no single match", bindUser, base)
}

func readSelf(conn *ldap.Conn, dn string) (*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"sAMAccountName", "objectSid", "tokenGroups", "adminCount"}, nil))
	if err != nil {
		return nil, fmt.Errorf("read the service account %s: %w", dn, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("read the service account %s: not found", dn)
	}
	return res.Entries[0], nil
}

// missingRights names the writeback rights that sids lack on user objects
// below ou: from the OU's DACL, and for attribute writes also from
// allowedAttributesEffective of a user below it when there is one (which
// accounts for deny entries and inheritance the DACL alone does not show).
func missingRights(conn *ldap.Conn, ou string, sids map[string]bool) ([]string, error) {
	res, err := conn.Search(ldap.NewSearchRequest(ou, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"nTSecurityDescriptor"}, []ldap.Control{&ldap.ControlMicrosoftSDFlags{ControlValue: 4}}))
	if err != nil {
		return nil, fmt.Errorf("read the security descriptor of %s: %w", ou, err)
	}
	if len(res.Entries) != 1 {
		return nil, fmt.Errorf("read %s: not found", ou)
	}
	sd := res.Entries[0].GetRawAttributeValue("nTSecurityDescriptor")
	if len(sd) == 0 {
		return nil, fmt.Errorf("read the security descriptor of %s: not readable by the service account", ou)
	}
	aces, err := parseDACL(sd)
	if err != nil {
		return nil, fmt.Errorf("parse the security descriptor of %s: %w", ou, err)
	}
	var effective []string
	probe := false
	if users, err := search(conn, ou, userFilter, []string{"1.1"}); err == nil && len(users) > 0 {
		r, err := conn.Search(ldap.NewSearchRequest(users[0].DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
			"(objectClass=*)", []string{"allowedAttributesEffective"}, nil))
		if err == nil && len(r.Entries) == 1 {
			effective, probe = r.Entries[0].GetAttributeValues("allowedAttributesEffective"), true
		}
	}
	var missing []string
	for _, w := range writebackRights {
		ok := grantedToUsers(aces, sids, w)
		if probe && w.asAttr != "" {
			ok = slices.ContainsFunc(effective, func(a string) bool { return strings.EqualFold(a, w.asAttr) })
		}
		if !ok {
			missing = append(missing, w.name)
		}
	}
	return missing, nil
}

func bindFix(err error, d *Domain) string {
	msg := err.Error()
	switch {
	case d.Bind.Method == BindKerberos:
		return "check bind.user (the principal), bind.keytab (klist -k), bind.krb5Conf (the realm's KDC) and that tls.serverName is the DC's host name (service principal ldap/<host>); a Samba DC older than 4.20 needs 'ldap server require strong auth = allow_sasl_over_tls' for GSSAPI over TLS"
	case d.Bind.Method == BindSSPI:
		return "run the service as an account of the domain (a gMSA or the computer account) and check the DC's host name"
	case strings.Contains(msg, "data 775"):
		return "the service account is locked out: unlock it and check no one uses an old password for it"
	case strings.Contains(msg, "data 533"):
		return "the service account is disabled: enable it"
	case strings.Contains(msg, "data 532"), strings.Contains(msg, "data 773"):
		return "the service account's password expired or must change: set a new one and update bind.password"
	case strings.Contains(msg, "data 701"):
		return "the service account has expired: extend accountExpires"
	}
	return "check bind.user (UPN, DN or DOMAIN\\name) and the bind.password secret"
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}

func detailOr(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

func orDash(s string) string {
	if s == "" {
		return "unset"
	}
	return s
}
