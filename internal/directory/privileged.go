package directory

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// sidBase says which SID a privileged class's RID is relative to.
type sidBase int

const (
	inBuiltin    sidBase = iota // S-1-5-32-<rid>: the BUILTIN domain
	inDomain                    // <domain SID>-<rid>: each configured domain
	inForestRoot                // <forest root domain SID>-<rid>
)

// privilegedClass is a built-in privileged group or account, known by its
// well-known RID: names can be renamed and translated, SIDs cannot.
type privilegedClass struct {
	name    string
	base    sidBase
	rid     uint32
	account bool // an account rather than a group
}

// privilegedClasses are refused whatever the config says, unless named in
// Scope.AllowPrivileged: whoever can set their passwords owns the domain
// or the forest (or, for the operators, a DC's files, backups or logon).
var privilegedClasses = []privilegedClass{
	{name: "Administrators", base: inBuiltin, rid: 544},
	{name: "Account Operators", base: inBuiltin, rid: 548},
	{name: "Server Operators", base: inBuiltin, rid: 549},
	{name: "Print Operators", base: inBuiltin, rid: 550},
	{name: "Backup Operators", base: inBuiltin, rid: 551},
	{name: "Domain Admins", base: inDomain, rid: 512},
	{name: "Domain Controllers", base: inDomain, rid: 516},
	{name: "Schema Admins", base: inForestRoot, rid: 518},
	{name: "Enterprise Admins", base: inForestRoot, rid: 519},
	{name: "Group Policy Creator Owners", base: inDomain, rid: 520},
	{name: "Read-only Domain Controllers", base: inDomain, rid: 521},
	{name: "Key Admins", base: inDomain, rid: 526},
	{name: "Enterprise Key Admins", base: inForestRoot, rid: 527},
	{name: "Administrator", base: inDomain, rid: 500, account: true},
	{name: "krbtgt", base: inDomain, rid: 502, account: true},
}

// PrivilegedNames lists the built-in privileged classes, the only names
// Scope.AllowPrivileged accepts.
func PrivilegedNames() []string {
	names := make([]string, len(privilegedClasses))
	for i, c := range privilegedClasses {
		names[i] = c.name
	}
	return names
}

// membershipTTL is how long the guard trusts what it learnt about group
// membership (the built-in groups' DNs, primary group verdicts): seconds,
// so that adding someone to Domain Admins protects them almost at once.
// The cache lives in the Directory, which a new config replaces whole.
const membershipTTL = 10 * time.Second

// privilegedGroup is a built-in group resolved in one domain.
type privilegedGroup struct {
	name string
	dn   string
	sid  string
}

// privilegedSet is what the guard knows about one domain's built-in
// privileged principals, minus those allowed by the config.
type privilegedSet struct {
	domainSID []byte
	groups    []privilegedGroup
	// primary maps the RID of a privileged group of the account's own
	// domain (a possible primary group) to its name.
	primary map[uint32]string
	// accounts maps the RID of a privileged account to its name.
	accounts map[uint32]string
	at       time.Time
}

// builtinSID returns S-1-5-32-rid.
func builtinSID(rid uint32) []byte {
	b := []byte{1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[12:], rid)
	return b
}

// appendRID returns the SID of rid in the domain whose SID is domain.
func appendRID(domain []byte, rid uint32) ([]byte, error) {
	if len(domain) < 8 || int(domain[1])*4+8 != len(domain) || domain[1] >= 15 {
		return nil, errors.New("malformed domain objectSid")
	}
	out := append([]byte{}, domain...)
	out[1]++
	return binary.LittleEndian.AppendUint32(out, rid), nil
}

// allowed reports whether the scope lets the agent write class name.
func (s Scope) allowed(name string) bool {
	for _, a := range s.AllowPrivileged {
		if strings.EqualFold(strings.TrimSpace(a), name) {
			return true
		}
	}
	return false
}

// privileged returns the domain's resolved privileged set, resolving it
// again once membershipTTL has passed (a renamed or moved group is found
// by its SID again).
func (d *Directory) privileged(ctx context.Context, pc *pconn, ds *domainState) (*privilegedSet, error) {
	now := d.opts.Now()
	ds.mu.Lock()
	set := ds.priv
	ds.mu.Unlock()
	if set != nil && now.Sub(set.at) < membershipTTL {
		return set, nil
	}
	set, err := d.resolvePrivileged(ctx, pc, ds)
	if err != nil {
		return nil, err
	}
	set.at = now
	ds.mu.Lock()
	ds.priv = set
	ds.mu.Unlock()
	return set, nil
}

// resolvePrivileged reads the domain's SID and the forest root's, and finds
// each built-in group by objectSid. A group that does not exist (Key
// Admins before Windows Server 2016) protects nobody and is left out; a
// SID that cannot be read is an error, so the guard fails closed.
func (d *Directory) resolvePrivileged(ctx context.Context, pc *pconn, ds *domainState) (*privilegedSet, error) {
	base := ds.base(pc.root.namingContext)
	domainSID, err := readSID(pc.conn, base)
	if err != nil {
		return nil, fmt.Errorf("read the domain SID of %s: %w", base, err)
	}
	rootNC, err := readRootDomainNC(pc.conn)
	if err != nil {
		return nil, err
	}
	sameRoot := false
	if r, err1 := ldap.ParseDN(rootNC); err1 == nil {
		if b, err2 := ldap.ParseDN(base); err2 == nil {
			sameRoot = r.EqualFold(b)
		}
	}
	set := &privilegedSet{domainSID: domainSID, primary: map[uint32]string{}, accounts: map[uint32]string{}}
	local := map[string]privilegedClass{} // SID string → class, searched in this domain
	remote := map[string]privilegedClass{}
	var rootSID []byte
	if sameRoot {
		rootSID = domainSID
	}
	for _, c := range privilegedClasses {
		if d.opts.Scope.allowed(c.name) {
			continue
		}
		if c.account {
			set.accounts[c.rid] = c.name
			continue
		}
		var sid []byte
		switch c.base {
		case inBuiltin:
			sid = builtinSID(c.rid)
		case inDomain:
			sid, err = appendRID(domainSID, c.rid)
			set.primary[c.rid] = c.name
		case inForestRoot:
			if rootSID == nil {
				if rootSID, err = d.forestRootSID(ctx, pc, rootNC); err != nil {
					return nil, err
				}
			}
			sid, err = appendRID(rootSID, c.rid)
			if sameRoot {
				set.primary[c.rid] = c.name
			}
		}
		if err != nil {
			return nil, fmt.Errorf("SID of %s: %w", c.name, err)
		}
		if c.base == inForestRoot && !sameRoot {
			remote[string(sid)] = c
		} else {
			local[string(sid)] = c
		}
	}
	found, err := groupsBySID(pc.conn, base, local)
	if err != nil {
		return nil, err
	}
	set.groups = append(set.groups, found...)
	if len(remote) > 0 {
		found, err := d.remoteGroupsBySID(ctx, pc, rootNC, remote)
		if err != nil {
			return nil, err
		}
		set.groups = append(set.groups, found...)
	}
	sortMostSpecificFirst(set.groups)
	return set, nil
}

// sortMostSpecificFirst orders the groups so that the refusal names the
// group an admin put the account in: the domain and forest groups
// (Domain Admins, Enterprise Admins, ...) are themselves members of the
// builtin Administrators, so a member of one is a nested member of the
// other, and the guard names the first group that matches. The DC returns
// the groups in no fixed order; the table's order, builtin groups last,
// makes the reason the same on every run.
func sortMostSpecificFirst(groups []privilegedGroup) {
	rank := make(map[string]int, len(privilegedClasses))
	for i, c := range privilegedClasses {
		if c.base == inBuiltin {
			i += len(privilegedClasses)
		}
		rank[c.name] = i
	}
	slices.SortStableFunc(groups, func(a, b privilegedGroup) int { return rank[a.name] - rank[b.name] })
}

// forestRootSID reads the forest root domain's SID: from this DC when it
// holds the root's naming context (a global catalog does), else from the
// configured global catalog.
func (d *Directory) forestRootSID(ctx context.Context, pc *pconn, rootNC string) ([]byte, error) {
	sid, err := readSID(pc.conn, rootNC)
	if err == nil {
		return sid, nil
	}
	if d.catalog != nil {
		err = d.withConn(ctx, d.catalog, func(gc *pconn) (bool, error) {
			var err error
			sid, err = readSID(gc.conn, rootNC)
			return false, err
		})
		if err == nil {
			return sid, nil
		}
	}
	return nil, fmt.Errorf("read the forest root domain's SID (%s), needed to refuse Enterprise and Schema Admins: %w "+
		"(use domain controllers that are global catalogs, or configure globalCatalog)", rootNC, err)
}

// remoteGroupsBySID finds the forest root's groups from a child domain:
// on this DC when it can search the root's naming context, else on the
// global catalog.
func (d *Directory) remoteGroupsBySID(ctx context.Context, pc *pconn, rootNC string, want map[string]privilegedClass) ([]privilegedGroup, error) {
	found, err := groupsBySID(pc.conn, rootNC, want)
	if err == nil || d.catalog == nil {
		return found, err
	}
	err = d.withConn(ctx, d.catalog, func(gc *pconn) (bool, error) {
		var err error
		found, err = groupsBySID(gc.conn, rootNC, want)
		return false, err
	})
	return found, err
}

// groupsBySID finds, below base, the groups whose objectSid is a key of
// want, in one search.
func groupsBySID(conn *ldap.Conn, base string, want map[string]privilegedClass) ([]privilegedGroup, error) {
	if len(want) == 0 {
		return nil, nil
	}
	var f strings.Builder
	f.WriteString("(&(objectClass=group)(|")
	for sid := range want {
		f.WriteString("(objectSid=" + EscapeBinary([]byte(sid)) + ")")
	}
	f.WriteString("))")
	res, err := conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
		f.String(), []string{"objectSid"}, nil))
	if err != nil {
		return nil, fmt.Errorf("find the built-in privileged groups below %s by SID: %w", base, err)
	}
	var out []privilegedGroup
	for _, e := range res.Entries {
		sid := e.GetRawAttributeValue("objectSid")
		if c, ok := want[string(sid)]; ok {
			out = append(out, privilegedGroup{name: c.name, dn: e.DN, sid: sidString(sid)})
		}
	}
	return out, nil
}

// readSID reads the objectSid of dn (a domain's naming context head).
func readSID(conn *ldap.Conn, dn string) ([]byte, error) {
	res, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"objectSid"}, nil))
	if err != nil {
		return nil, err
	}
	if len(res.Entries) != 1 || len(res.Entries[0].GetRawAttributeValue("objectSid")) == 0 {
		return nil, fmt.Errorf("%s has no objectSid", dn)
	}
	return res.Entries[0].GetRawAttributeValue("objectSid"), nil
}

// readRootDomainNC reads the forest root domain's naming context from the
// rootDSE.
func readRootDomainNC(conn *ldap.Conn) (string, error) {
	res, err := conn.Search(ldap.NewSearchRequest("", ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"rootDomainNamingContext"}, nil))
	if err != nil {
		return "", fmt.Errorf("read rootDomainNamingContext: %w", err)
	}
	if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("rootDomainNamingContext") == "" {
		return "", errors.New("read rootDomainNamingContext: the DC's rootDSE does not name the forest root")
	}
	return res.Entries[0].GetAttributeValue("rootDomainNamingContext"), nil
}

// User account control bits of machine and trust accounts.
const (
	uacInterdomainTrust = 0x800
	uacWorkstation      = 0x1000
	uacServerTrust      = 0x2000
)

// machineAccount names what a is when it is not a person's account
// (a computer, a domain controller, a trust or a managed service
// account), or "". Their passwords belong to the machines and the
// directory, never to a writeback, so no option allows them.
func machineAccount(a *account) string {
	var computer bool
	for _, oc := range a.objectClass {
		switch strings.ToLower(oc) {
		case "msds-groupmanagedserviceaccount":
			return "a group managed service account"
		case "msds-managedserviceaccount":
			return "a managed service account"
		case "msds-delegatedmanagedserviceaccount":
			return "a delegated managed service account"
		case "computer":
			computer = true
		}
	}
	switch {
	case a.uac&uacServerTrust != 0:
		return "a domain controller's account"
	case a.uac&uacInterdomainTrust != 0:
		return "a trust account"
	case computer || a.uac&uacWorkstation != 0:
		return "a computer account"
	}
	return ""
}

// privilegedAccount names the built-in privileged account a is
// (Administrator, krbtgt, by RID of its own domain), or "".
func (set *privilegedSet) privilegedAccount(a *account) string {
	if len(a.sid) != len(set.domainSID)+4 || string(a.sid[2:8]) != string(set.domainSID[2:8]) ||
		string(a.sid[8:len(a.sid)-4]) != string(set.domainSID[8:]) {
		return ""
	}
	return set.accounts[binary.LittleEndian.Uint32(a.sid[len(a.sid)-4:])]
}

// validate enforces an explicit scope and known privileged names.
func (s Scope) validate() error {
	switch {
	case len(s.IncludeOUs) == 0 && !s.EntireDomain:
		return errors.New("directory: scope: no includeOUs: list the OUs the agent may write, or set entireDomain to write anywhere")
	case len(s.IncludeOUs) > 0 && s.EntireDomain:
		return errors.New("directory: scope: give includeOUs or entireDomain, not both")
	}
	for _, a := range s.AllowPrivileged {
		known := false
		for _, c := range privilegedClasses {
			known = known || strings.EqualFold(strings.TrimSpace(a), c.name)
		}
		if !known {
			return fmt.Errorf("directory: scope: allowPrivileged %q is not a built-in privileged class: use one of %s", a, strings.Join(PrivilegedNames(), ", "))
		}
	}
	return nil
}

// PrivilegedSID describes the well-known SID of the built-in class name:
// S-1-5-32-<rid> for BUILTIN groups, "<domain SID>-<rid>" or "<forest root
// SID>-<rid>" for the others; "" for an unknown name.
func PrivilegedSID(name string) string {
	for _, c := range privilegedClasses {
		if !strings.EqualFold(c.name, name) {
			continue
		}
		switch c.base {
		case inBuiltin:
			return fmt.Sprintf("S-1-5-32-%d", c.rid)
		case inDomain:
			return fmt.Sprintf("<domain SID>-%d", c.rid)
		default:
			return fmt.Sprintf("<forest root SID>-%d", c.rid)
		}
	}
	return ""
}
