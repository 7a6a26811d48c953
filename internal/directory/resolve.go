package directory

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"wbagent/internal/wire"

	"github.com/go-ldap/ldap/v3"
)

// userFilter matches user accounts (not computers, trusts or contacts):
// SAM_NORMAL_USER_ACCOUNT.
const userFilter = "(sAMAccountType=805306368)"

// accountFilter is what a target lookup matches: user, machine and trust
// accounts (SAM_NORMAL_USER_ACCOUNT, SAM_MACHINE_ACCOUNT,
// SAM_TRUST_ACCOUNT), so that a request naming a computer, a gMSA or a
// trust is refused as protected_account rather than user_not_found.
// Groups and contacts are never matched.
const accountFilter = "(|(sAMAccountType=805306368)(sAMAccountType=805306369)(sAMAccountType=805306370))"

// accountAttrs are read for the guard and the outcome.
var accountAttrs = []string{"objectGUID", "sAMAccountName", "userPrincipalName", "userAccountControl",
	"adminCount", "objectSid", "primaryGroupID", "objectClass"}

// account is a resolved user.
type account struct {
	dn             string
	guid           []byte
	sam, upn       string
	uac            int64
	adminCount     string
	sid            []byte
	primaryGroupID uint32
	objectClass    []string
}

func newAccount(e *ldap.Entry) *account {
	a := &account{
		dn:          e.DN,
		guid:        e.GetRawAttributeValue("objectGUID"),
		sam:         e.GetAttributeValue("sAMAccountName"),
		upn:         e.GetAttributeValue("userPrincipalName"),
		adminCount:  e.GetAttributeValue("adminCount"),
		sid:         e.GetRawAttributeValue("objectSid"),
		objectClass: e.GetAttributeValues("objectClass"),
	}
	a.uac, _ = strconv.ParseInt(e.GetAttributeValue("userAccountControl"), 10, 64)
	if v, err := strconv.ParseUint(e.GetAttributeValue("primaryGroupID"), 10, 32); err == nil {
		a.primaryGroupID = uint32(v)
	}
	return a
}

// resolveError is a definite answer about the target (not found,
// ambiguous, out of scope) rather than a failure.
type resolveError struct {
	code string
	err  error
}

func (e *resolveError) Error() string { return e.err.Error() }

func notFound(t Target) error {
	return &resolveError{code: wire.CodeUserNotFound, err: fmt.Errorf("no account matches %s", t)}
}

func ambiguous(t Target, n int) error {
	return &resolveError{code: wire.CodeUserAmbiguous, err: fmt.Errorf("%d or more accounts match %s", n, t)}
}

// targetFilters returns the LDAP filters that find t, tried in order until
// one matches (immutableId: mS-DS-ConsistencyGuid, then objectGUID).
func targetFilters(t Target) ([]string, error) {
	n := 0
	for _, v := range []string{t.ObjectGUID, t.ImmutableID, t.UserPrincipalName, t.SAMAccountName} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return nil, errors.New("target: exactly one of objectGUID, immutableId, userPrincipalName and sAMAccountName must be set")
	}
	and := func(f string) string { return "(&" + accountFilter + f + ")" }
	switch {
	case t.ObjectGUID != "":
		b, err := GUIDBytes(t.ObjectGUID)
		if err != nil {
			return nil, err
		}
		return []string{and("(objectGUID=" + EscapeBinary(b) + ")")}, nil
	case t.ImmutableID != "":
		b, err := ImmutableIDBytes(t.ImmutableID)
		if err != nil {
			return nil, err
		}
		return []string{and("(mS-DS-ConsistencyGuid=" + EscapeBinary(b) + ")"), and("(objectGUID=" + EscapeBinary(b) + ")")}, nil
	case t.UserPrincipalName != "":
		return []string{and("(userPrincipalName=" + ldap.EscapeFilter(t.UserPrincipalName) + ")")}, nil
	default:
		return []string{and("(sAMAccountName=" + ldap.EscapeFilter(t.SAMAccountName) + ")")}, nil
	}
}

// search runs a subtree search for at most two entries (two already mean
// ambiguous). Continuation references are ignored: other domains are
// reached through their own configuration or the global catalog.
func search(conn *ldap.Conn, base, filter string, attrs []string) ([]*ldap.Entry, error) {
	res, err := conn.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, 0, false, filter, attrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) && res != nil && len(res.Entries) >= 2 {
		return res.Entries, nil // more than two: the caller only counts
	}
	if err != nil {
		return nil, err
	}
	return res.Entries, nil
}

// findIn looks t up in one domain over pc.
func findIn(pc *pconn, ds *domainState, t Target) (*account, error) {
	filters, err := targetFilters(t)
	if err != nil {
		return nil, &resolveError{code: wire.CodeInternalError, err: err}
	}
	base := ds.base(pc.root.namingContext)
	for _, f := range filters {
		entries, err := search(pc.conn, base, f, accountAttrs)
		if err != nil {
			return nil, fmt.Errorf("search %s for %s: %w", base, t, err)
		}
		switch len(entries) {
		case 0:
			continue
		case 1:
			return newAccount(entries[0]), nil
		default:
			return nil, ambiguous(t, len(entries))
		}
	}
	return nil, notFound(t)
}

// readByGUID reads the account with objectGUID guid from the domain's own
// DC (after the global catalog pointed there).
func readByGUID(pc *pconn, guid []byte) (*account, error) {
	res, err := pc.conn.Search(ldap.NewSearchRequest("<GUID="+GUIDString(guid)+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, 0, false, accountFilter, accountAttrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil, &resolveError{code: wire.CodeUserNotFound, err: fmt.Errorf("objectGUID %s vanished", GUIDString(guid))}
	}
	if err != nil {
		return nil, fmt.Errorf("read objectGUID %s: %w", GUIDString(guid), err)
	}
	if len(res.Entries) != 1 {
		return nil, &resolveError{code: wire.CodeUserNotFound, err: fmt.Errorf("objectGUID %s is not an account", GUIDString(guid))}
	}
	return newAccount(res.Entries[0]), nil
}

// locate decides which domain holds t. With one domain, or a sAMAccountName
// with its domain, that is known without a search (guid nil). Otherwise the
// global catalog (objectGUID, UPN, sAMAccountName) or every domain in turn
// (immutableId: mS-DS-ConsistencyGuid is not in the catalog) is searched and
// the account's objectGUID returned with its domain.
func (d *Directory) locate(ctx context.Context, t Target) (*domainState, []byte, error) {
	if t.SAMAccountName != "" && t.Domain != "" {
		ds := d.domainFor(t.Domain)
		if ds == nil {
			return nil, nil, &resolveError{code: wire.CodeOutOfScope, err: fmt.Errorf("domain %q is not configured", t.Domain)}
		}
		return ds, nil, nil
	}
	if len(d.domains) == 1 {
		return d.domains[0], nil, nil
	}
	if d.catalog != nil && t.ImmutableID == "" {
		return d.locateInCatalog(ctx, t)
	}
	var found *domainState
	var guid []byte
	for _, ds := range d.domains {
		var a *account
		err := d.withConn(ctx, ds.pool, func(pc *pconn) (bool, error) {
			var err error
			a, err = findIn(pc, ds, t)
			return false, err
		})
		var re *resolveError
		if errors.As(err, &re) && re.code == wire.CodeUserNotFound {
			continue
		}
		if err != nil {
			return nil, nil, err
		}
		if found != nil {
			return nil, nil, ambiguous(t, 2)
		}
		found, guid = ds, a.guid
	}
	if found == nil {
		return nil, nil, notFound(t)
	}
	return found, guid, nil
}

func (d *Directory) locateInCatalog(ctx context.Context, t Target) (*domainState, []byte, error) {
	filters, err := targetFilters(t)
	if err != nil {
		return nil, nil, &resolveError{code: wire.CodeInternalError, err: err}
	}
	var entries []*ldap.Entry
	err = d.withConn(ctx, d.catalog, func(pc *pconn) (bool, error) {
		var err error
		entries, err = search(pc.conn, "", filters[0], []string{"objectGUID"})
		return false, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("search the global catalog for %s: %w", t, err)
	}
	switch len(entries) {
	case 0:
		return nil, nil, notFound(t)
	case 1:
	default:
		return nil, nil, ambiguous(t, len(entries))
	}
	ds := d.domainOfDN(entries[0].DN)
	if ds == nil {
		return nil, nil, &resolveError{code: wire.CodeOutOfScope, err: fmt.Errorf("%s lies in a domain that is not configured", entries[0].DN)}
	}
	return ds, entries[0].GetRawAttributeValue("objectGUID"), nil
}
