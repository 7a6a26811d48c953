package config

import (
	"fmt"
	"strings"
)

// PrivilegedNames are the built-in privileged classes the agent refuses by
// well-known SID whatever the config says, and the only names
// scope.allowPrivileged accepts. The directory package holds the same list
// with the SIDs (a test keeps the two in step): config depends on nothing
// but the secret package.
var PrivilegedNames = []string{
	"Administrators", "Account Operators", "Server Operators", "Print Operators", "Backup Operators",
	"Domain Admins", "Domain Controllers", "Schema Admins", "Enterprise Admins",
	"Group Policy Creator Owners", "Read-only Domain Controllers", "Key Admins", "Enterprise Key Admins",
	"Administrator", "krbtgt",
}

// completeScope enforces an explicit scope: an empty includeOUs is an
// error unless entireDomain says so, and every domain needs an OU of its
// own. allowPrivileged may only name built-in classes.
func (c *Config) completeScope(k *checker) {
	s := &c.Directory.Scope
	switch {
	case len(s.IncludeOUs) == 0 && !s.EntireDomain:
		k.fail("directory.scope.includeOUs", "missing: list the OUs the agent may write, e.g. [OU=Staff,DC=corp,DC=example,DC=test]; "+
			"to write anywhere in the domains instead, set directory.scope.entireDomain: true")
	case len(s.IncludeOUs) > 0 && s.EntireDomain:
		k.fail("directory.scope.entireDomain", "give includeOUs or entireDomain: true, not both")
	case len(s.IncludeOUs) > 0:
		for i, ou := range s.IncludeOUs {
			if looksLikeDN(ou) && !c.inSomeDomain(ou) {
				k.fail(fmt.Sprintf("directory.scope.includeOUs[%d]", i), "%q lies in none of the configured domains "+
					"(in a [flow, list] a DN needs quotes, or its commas split it into several entries)", ou)
			}
		}
		for i, d := range c.Directory.Domains {
			if d.BaseDN == "" || !looksLikeDN(d.BaseDN) || c.domainHasOU(d.BaseDN) {
				continue
			}
			k.fail("directory.scope.includeOUs", "no OU inside domain %s (directory.domains[%d], %s): add one, or remove the domain",
				d.Name, i, d.BaseDN)
		}
	}
	seen := map[string]bool{}
	for i, name := range s.AllowPrivileged {
		p := fmt.Sprintf("directory.scope.allowPrivileged[%d]", i)
		canon := ""
		for _, n := range PrivilegedNames {
			if strings.EqualFold(strings.TrimSpace(name), n) {
				canon = n
			}
		}
		switch {
		case canon == "":
			k.fail(p, "%q is not a built-in privileged class: use one of %s", name, strings.Join(PrivilegedNames, ", "))
		case seen[canon]:
			k.fail(p, "%q is listed twice", name)
		default:
			s.AllowPrivileged[i] = canon
		}
		seen[canon] = true
	}
}

// domainHasOU reports whether some includeOU lies in the naming context
// base (or is base itself).
func (c *Config) domainHasOU(base string) bool {
	b := normalizeDN(base)
	for _, ou := range c.Directory.Scope.IncludeOUs {
		o := normalizeDN(ou)
		if o == b || strings.HasSuffix(o, ","+b) {
			return true
		}
	}
	return false
}

// inSomeDomain reports whether dn lies in (or is) the naming context of a
// configured domain.
func (c *Config) inSomeDomain(dn string) bool {
	n := normalizeDN(dn)
	for _, d := range c.Directory.Domains {
		if b := normalizeDN(d.BaseDN); d.BaseDN != "" && (n == b || strings.HasSuffix(n, ","+b)) {
			return true
		}
	}
	return false
}

// normalizeDN lower-cases a DN and drops the spaces around its separators,
// so that two spellings of one DN compare equal. Escaped commas stay.
func normalizeDN(dn string) string {
	var parts []string
	var cur strings.Builder
	esc := false
	for _, r := range dn {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\':
			cur.WriteRune(r)
			esc = true
		case r == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	parts = append(parts, cur.String())
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		parts[i] = strings.ToLower(strings.TrimSpace(k)) + "=" + strings.ToLower(strings.TrimSpace(v))
	}
	return strings.Join(parts, ",")
}

// completeDiscoveryTrust refuses DNS SRV discovery without a trust anchor
// of the domain's own: an outsider who can answer DNS could otherwise
// point the agent at a server with any publicly trusted certificate.
func (c *Config) completeDiscoveryTrust(k *checker) {
	for i, d := range c.Directory.Domains {
		if d.Discover && !discoveryTrustAnchored(d.TLS) {
			k.fail(fmt.Sprintf("directory.domains[%d].discover", i),
				"servers found by DNS SRV need tls.caFile (the CA that issued the DCs' certificates) or tls.pinSHA256: the system roots alone do not vouch for a domain controller")
		}
	}
}

// discoveryTrustAnchored reports whether t names a trust anchor of the
// domain's own, which discovered servers must prove: a CA file or a
// certificate pin (tls.pinSHA256).
func discoveryTrustAnchored(t TLS) bool {
	return t.CAFile != "" || len(t.PinSHA256) > 0
}
