// Package directory applies password writebacks to Active Directory: it
// finds the account, refuses what the agent must not touch, and writes the
// change with one LDAP modify, answering with a protocol-v1 result code.
//
// Connections are always encrypted (LDAPS, or LDAP with StartTLS; TLS 1.2
// or newer, a CA file, the system roots or pinned keys, an optional
// server-name override). Certificates are verified in tls.go rather than by
// crypto/tls, so the CN-only certificates real DCs serve are matched on
// their CN after the chain verified; every TLS failure is a *TLSError that
// names its cause and fix. Each domain has a pool of bound connections; servers are
// tried in order, the last good one first, and a server that fails is
// tried last for a while. `discover` adds the DCs of the DNS SRV record
// _ldap._tcp.dc._msdcs.<domain>. Binds are simple, kerberos (keytab,
// krb5.conf, GSSAPI) or, on Windows, sspi (the service's own identity).
//
// Public API in brief:
//
//	d, err := directory.New(directory.Options{...}, logger)
//	out := d.Apply(ctx, directory.Change{Op: wire.OpReset, Target: ..., New: pw})
//	// out.Code is a protocol-v1 §6 code; out.Transient, out.Indeterminate,
//	// out.DN, out.ObjectGUID, out.DC, out.ADCode, out.Err for the audit
//	t, err := d.PwdLastSet(ctx, target) // on the PDC emulator
//	err = d.Ready(ctx)                   // for /readyz
//	d.Close()
//	rows := directory.Check(ctx, opts)   // for `wbagent check`
//	in, err := directory.Inspect(ctx, url, tls, timeout) // for `wbagent tls show`: the chain, never a bind
//	directory.Classify(err), directory.Rules // the error table
//
// One modify per writeback: reset replaces unicodePwd, with lockoutTime=0
// (unlock) and pwdLastSet=0 (mustChange) in the same request; change
// deletes the old and adds the new unicodePwd, with lockoutTime=0 when
// unlock is asked (the DC then clears the lockout before it checks the
// change); unlock writes lockoutTime=0.
//
// Every error is classified once, here (Rules): the AD code leading the
// diagnostic message first, then the LDAP result, then the text. Lost
// connections, timeouts, busy and unavailable servers are
// directory_unavailable and transient. A lookup that fails on a broken
// connection is retried on another one within Options.Timeout; a write
// whose answer is lost is not retried but reported Indeterminate, since it
// may have been applied (a change cannot be repeated).
//
// Before any write the guard refuses, in order: accounts outside
// scope.includeOUs (out_of_scope; an empty includeOUs is refused by New
// unless Scope.EntireDomain); then, as protected_account, listed
// accounts, computer, trust and managed service accounts, the built-in
// privileged accounts and groups found by well-known SID (privileged.go:
// Administrator and krbtgt by RID, and the direct, nested and
// primary-group members of Administrators, the Operators, Domain and
// Enterprise Admins and the rest, unless named in Scope.AllowPrivileged),
// adminCount=1, and members of the configured protected groups; last,
// disabled accounts unless allowed (account_disabled). Lookups match
// user, machine and trust accounts (never groups or contacts), so that
// a machine is refused rather than not found. The groups' DNs are found
// again by SID every few seconds; a failed lookup fails the write closed.
//
// DNS SRV discovery keeps only targets inside the domain's DNS name or
// configured as servers, and needs a CA file or pinned keys
// (discoveryAnchored): the system roots vouch for public names, not for a
// domain controller.
//
// historyOnReset decides from each server's rootDSE supportedControl
// whether a reset carries the policy hints control (critical, encoded with
// BER TRUE 0xFF): auto sends it where advertised, require refuses resets
// elsewhere (password_policy, detail policy), off never sends it.
package directory
