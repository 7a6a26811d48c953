package directory

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// pdcTTL is how long the PDC emulator's name is kept: the role moves
// rarely, and only by an administrator.
const pdcTTL = 10 * time.Minute

// pdcOf returns the dNSHostName of the domain's PDC emulator: the server
// whose NTDS Settings object the domain head's fSMORoleOwner names.
func (d *Directory) pdcOf(pc *pconn, ds *domainState) (string, error) {
	ds.mu.Lock()
	if ds.pdc != "" && d.opts.Now().Sub(ds.pdcAt) < pdcTTL {
		defer ds.mu.Unlock()
		return ds.pdc, nil
	}
	ds.mu.Unlock()
	base := ds.base(pc.root.namingContext)
	res, err := pc.conn.Search(ldap.NewSearchRequest(base, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"fSMORoleOwner"}, nil))
	if err != nil {
		return "", fmt.Errorf("read fSMORoleOwner of %s: %w", base, err)
	}
	if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("fSMORoleOwner") == "" {
		return "", fmt.Errorf("read fSMORoleOwner of %s: not set", base)
	}
	ntds, err := ldap.ParseDN(res.Entries[0].GetAttributeValue("fSMORoleOwner"))
	if err != nil || len(ntds.RDNs) < 2 {
		return "", fmt.Errorf("fSMORoleOwner of %s is not a DN", base)
	}
	serverDN := (&ldap.DN{RDNs: ntds.RDNs[1:]}).String()
	res, err = pc.conn.Search(ldap.NewSearchRequest(serverDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"dNSHostName"}, nil))
	if err != nil {
		return "", fmt.Errorf("read dNSHostName of %s: %w", serverDN, err)
	}
	if len(res.Entries) != 1 || res.Entries[0].GetAttributeValue("dNSHostName") == "" {
		return "", fmt.Errorf("read dNSHostName of %s: not set", serverDN)
	}
	host := res.Entries[0].GetAttributeValue("dNSHostName")
	ds.mu.Lock()
	ds.pdc, ds.pdcAt = host, d.opts.Now()
	ds.mu.Unlock()
	return host, nil
}

func sameHost(a, b string) bool {
	return a != "" && strings.EqualFold(strings.TrimSuffix(a, "."), strings.TrimSuffix(b, "."))
}

// readPwdLastSet reads pwdLastSet of the object with objectGUID guid.
func readPwdLastSet(conn *ldap.Conn, guid []byte) (time.Time, error) {
	res, err := conn.Search(ldap.NewSearchRequest("<GUID="+GUIDString(guid)+">", ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, 0, false, "(objectClass=*)", []string{"pwdLastSet"}, nil))
	if err != nil {
		return time.Time{}, err
	}
	if len(res.Entries) != 1 {
		return time.Time{}, fmt.Errorf("objectGUID %s not found", GUIDString(guid))
	}
	v, err := strconv.ParseInt(res.Entries[0].GetAttributeValue("pwdLastSet"), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("pwdLastSet of %s: %w", GUIDString(guid), err)
	}
	return fileTime(v), nil
}

// pwdLastSetOn reads pwdLastSet on the host pdc with a connection of its
// own, using the domain's TLS and bind settings and the scheme and port of
// its first configured server.
func (d *Directory) pwdLastSetOn(ctx context.Context, ds *domainState, pdc string, guid []byte) (time.Time, error) {
	scheme, port := "ldaps", "636"
	if len(ds.cfg.Servers) > 0 {
		if s, err := parseServer(ds.cfg.Servers[0], ds.cfg.TLS.StartTLS); err == nil {
			port = s.port
			if !s.ldaps {
				scheme = "ldap"
			}
		}
	}
	srv, err := parseServer(scheme+"://"+net.JoinHostPort(pdc, port), ds.cfg.TLS.StartTLS)
	if err != nil {
		return time.Time{}, err
	}
	conn, _, err := ds.pool.dialer.dial(ctx, srv)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	setDeadline(ctx, conn)
	return readPwdLastSet(conn, guid)
}
