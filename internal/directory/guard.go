package directory

import (
	"context"
	"fmt"
	"strings"
	"time"

	"wbagent/internal/wire"

	"github.com/go-ldap/ldap/v3"
)

// OID of LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
const oidInChain = "1.2.840.113556.1.4.1941"

// uacDisabled is ADS_UF_ACCOUNTDISABLE in userAccountControl.
const uacDisabled = 0x2

// refusal is the guard's answer when an account must not be written.
type refusal struct {
	code string
	why  string
}

// guard decides whether the agent may write a, before any write: scope
// first, then protection (listed accounts, machine and trust accounts, the
// built-in privileged accounts and groups by well-known SID, adminCount,
// the configured protected groups), then the disabled flag. A nil refusal
// with a nil error means go ahead; an error is a failed lookup, and the
// write does not happen.
func (d *Directory) guard(ctx context.Context, pc *pconn, ds *domainState, a *account) (*refusal, error) {
	sc := d.opts.Scope
	dn, err := ldap.ParseDN(a.dn)
	if err != nil {
		return nil, fmt.Errorf("parse the account's DN %q: %w", a.dn, err)
	}
	if len(sc.IncludeOUs) > 0 || !sc.EntireDomain {
		in := false
		for _, ou := range sc.IncludeOUs {
			p, err := ldap.ParseDN(ou)
			if err == nil && p.AncestorOfFold(dn) {
				in = true
				break
			}
		}
		if !in {
			return &refusal{wire.CodeOutOfScope, "the account is outside scope.includeOUs"}, nil
		}
	}
	for _, name := range sc.ProtectedAccounts {
		if protectedName(name, a, dn) {
			return &refusal{wire.CodeProtectedAccount, fmt.Sprintf("the account is listed in scope.protectedAccounts (%s)", name)}, nil
		}
	}
	if what := machineAccount(a); what != "" {
		return &refusal{wire.CodeProtectedAccount, "the account is " + what + ": its password is the machine's, never a writeback's"}, nil
	}
	set, err := d.privileged(ctx, pc, ds)
	if err != nil {
		return nil, guardError(err)
	}
	if name := set.privilegedAccount(a); name != "" {
		return &refusal{wire.CodeProtectedAccount, "the account is the built-in " + name + " (" + sidString(a.sid) + ")"}, nil
	}
	if name, ok := set.primary[a.primaryGroupID]; ok && a.primaryGroupID != 0 {
		return &refusal{wire.CodeProtectedAccount, "the account's primary group is the built-in privileged group " + name}, nil
	}
	if sc.ProtectAdminCount && strings.TrimSpace(a.adminCount) == "1" {
		return &refusal{wire.CodeProtectedAccount, "adminCount=1: the account is protected by AdminSDHolder"}, nil
	}
	groups := make([]protectedGroup, 0, len(set.groups)+len(sc.ProtectedGroups))
	for _, g := range set.groups {
		groups = append(groups, protectedGroup{dn: g.dn, label: "built-in privileged group " + g.name + " (" + g.sid + ")"})
	}
	for _, g := range sc.ProtectedGroups {
		groups = append(groups, protectedGroup{dn: g, label: "protected group " + g})
	}
	if len(groups) > 0 {
		group, err := d.protectedMember(pc, ds, a, groups)
		if err != nil {
			return nil, guardError(err)
		}
		if group != "" {
			return &refusal{wire.CodeProtectedAccount, "the account is a member (directly, nested or by primary group) of " + group}, nil
		}
	}
	if a.uac&uacDisabled != 0 && !sc.AllowDisabled {
		return &refusal{wire.CodeAccountDisabled, "the account is disabled and scope.allowDisabled is off"}, nil
	}
	return nil, nil
}

// guardError keeps lost connections retryable (withConn tries another
// server) and makes any other failure to decide a permanent internal
// error: an answer such as "no such object" about a group must not read as
// the target's user_not_found.
func guardError(err error) error {
	if isNetwork(err) {
		return err
	}
	return &resolveError{code: wire.CodeInternalError, err: fmt.Errorf("decide whether the account is protected: %w", err)}
}

// protectedGroup is a group whose members the guard refuses, with how the
// refusal names it.
type protectedGroup struct {
	dn    string
	label string
}

func protectedName(name string, a *account, dn *ldap.DN) bool {
	switch {
	case strings.Contains(name, "="):
		p, err := ldap.ParseDN(name)
		return err == nil && p.EqualFold(dn)
	case strings.Contains(name, "@"):
		return a.upn != "" && strings.EqualFold(name, a.upn)
	default:
		if _, n, ok := strings.Cut(name, `\`); ok {
			name = n
		}
		return strings.EqualFold(name, a.sam)
	}
}

// protectedMember returns the label of a protected group a belongs to,
// directly, through nested groups (matching rule in chain), or through its
// primary group (which memberOf does not list), or "".
func (d *Directory) protectedMember(pc *pconn, ds *domainState, a *account, groups []protectedGroup) (string, error) {
	var chain strings.Builder
	chain.WriteString("(|")
	for _, g := range groups {
		fmt.Fprintf(&chain, "(memberOf:%s:=%s)", oidInChain, ldap.EscapeFilter(g.dn))
	}
	chain.WriteString(")")
	member, err := matches(pc.conn, a.dn, chain.String())
	if err != nil {
		return "", fmt.Errorf("check membership of %s in the protected groups: %w", a.dn, err)
	}
	if member {
		// Rare: name the group for the audit, one search per group.
		for _, g := range groups {
			if ok, err := matches(pc.conn, a.dn, fmt.Sprintf("(memberOf:%s:=%s)", oidInChain, ldap.EscapeFilter(g.dn))); err == nil && ok {
				return g.label, nil
			}
		}
		return "the protected groups", nil
	}
	if a.primaryGroupID == 0 || len(a.sid) == 0 {
		return "", nil
	}
	if g, ok := ds.primaryGroupVerdict(a.primaryGroupID, d.opts.Now()); ok {
		return g, nil
	}
	sid, err := sidWithRID(a.sid, a.primaryGroupID)
	if err != nil {
		return "", fmt.Errorf("primary group of %s: %w", a.dn, err)
	}
	var self strings.Builder
	self.WriteString("(|")
	for _, g := range groups {
		fmt.Fprintf(&self, "(distinguishedName=%s)", ldap.EscapeFilter(g.dn))
	}
	self.WriteString(")")
	filter := "(&(objectSid=" + EscapeBinary(sid) + ")(|" + self.String() + chain.String() + "))"
	res, err := pc.conn.Search(ldap.NewSearchRequest(ds.base(pc.root.namingContext), ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 1, 0, false,
		filter, []string{"1.1"}, nil))
	if err != nil && !ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) {
		return "", fmt.Errorf("check the primary group of %s: %w", a.dn, err)
	}
	verdict := ""
	if res != nil && len(res.Entries) > 0 {
		verdict = "primary group " + res.Entries[0].DN
	}
	ds.rememberPrimaryGroup(a.primaryGroupID, verdict, d.opts.Now())
	return verdict, nil
}

// primaryGroupTTL is how long the protection verdict on a primary group is
// kept: nearly every account has the same one (Domain Users), so one
// search every few seconds replaces one per writeback.
const primaryGroupTTL = membershipTTL

type groupVerdict struct {
	group string // protected group reached, "" when none
	at    time.Time
}

func (ds *domainState) primaryGroupVerdict(rid uint32, now time.Time) (string, bool) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	v, ok := ds.primary[rid]
	if !ok || now.Sub(v.at) >= primaryGroupTTL {
		return "", false
	}
	return v.group, true
}

func (ds *domainState) rememberPrimaryGroup(rid uint32, group string, now time.Time) {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if ds.primary == nil {
		ds.primary = map[uint32]groupVerdict{}
	}
	ds.primary[rid] = groupVerdict{group: group, at: now}
}

// matches reports whether the object dn matches filter (a base search).
func matches(conn *ldap.Conn, dn, filter string) (bool, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		filter, []string{"1.1"}, nil))
	if err != nil {
		return false, err
	}
	return len(res.Entries) > 0, nil
}
