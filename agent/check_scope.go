package main

import (
	"fmt"
	"strings"

	"wbagent/internal/config"
	"wbagent/internal/directory"
)

// scopeRows show, from the config alone, what the agent may write: the
// effective scope, the protections built in whatever the config says, and
// a WARN for every unsafe choice (the whole domain, adminCount off, each
// privileged class allowed).
func scopeRows(cfg *config.Config) []checkRow {
	s := cfg.Directory.Scope
	var rows []checkRow
	if s.EntireDomain {
		var names []string
		for _, d := range cfg.Directory.Domains {
			names = append(names, d.Name)
		}
		rows = append(rows, checkRow{Name: "scope", OK: true, Warn: true,
			Detail: "entire domain (scope.entireDomain): any account of " + strings.Join(names, ", ") + " outside the protections below",
			Fix:    "list the OUs the agent serves in directory.scope.includeOUs and drop entireDomain"})
	} else {
		rows = append(rows, checkRow{Name: "scope", OK: true, Detail: "only accounts below " + strings.Join(s.IncludeOUs, "; ")})
	}
	var always []string
	for _, name := range config.PrivilegedNames {
		if !allowedClass(s.AllowPrivileged, name) {
			always = append(always, name+" ("+directory.PrivilegedSID(name)+")")
		}
	}
	rows = append(rows, checkRow{Name: "built-in protection", OK: true,
		Detail: "refused by well-known SID, direct, nested and primary-group members: " + strings.Join(always, ", ") +
			"; and computer, trust and managed service accounts"})
	if s.ProtectAdminCount != nil && !*s.ProtectAdminCount {
		rows = append(rows, checkRow{Name: "protection adminCount=1", OK: true, Warn: true,
			Detail: "off (scope.protectAdminCount: false): accounts AdminSDHolder protects, or once protected, can be written",
			Fix:    "set directory.scope.protectAdminCount: true unless those accounts are meant to be served"})
	} else {
		rows = append(rows, checkRow{Name: "protection adminCount=1", OK: true, Detail: "on"})
	}
	if len(s.ProtectedGroups)+len(s.ProtectedAccounts) > 0 {
		rows = append(rows, checkRow{Name: "configured protection", OK: true, Detail: fmt.Sprintf("groups: %s; accounts: %s",
			orNone(s.ProtectedGroups), orNone(s.ProtectedAccounts))})
	}
	for _, name := range s.AllowPrivileged {
		rows = append(rows, checkRow{Name: "privileged class allowed: " + name, OK: true, Warn: true,
			Detail: fmt.Sprintf("scope.allowPrivileged lets the agent set the passwords of %s (%s) and its nested members", name, directory.PrivilegedSID(name)),
			Fix:    "remove " + name + " from directory.scope.allowPrivileged unless whoever can send writebacks may take over these accounts"})
	}
	return rows
}

func allowedClass(allowed []string, name string) bool {
	for _, a := range allowed {
		if strings.EqualFold(a, name) {
			return true
		}
	}
	return false
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, "; ")
}
