// Package directory applies password writebacks to Active Directory: it
// finds the account, refuses what the agent must not touch, and writes the
// change with one LDAP modify, answering with a protocol-v1 result code.
//
// Connections are always encrypted (LDAPS, or LDAP with StartTLS; TLS 1.2
// or newer, a CA file or the system roots, an optional server-name
// override). Each domain has a pool of bound connections; servers are
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
// scope.includeOUs (out_of_scope); listed accounts, adminCount=1 and
// direct, nested or primary-group members of protected groups
// (protected_account); disabled accounts unless allowed
// (account_disabled). Only user accounts (sAMAccountType 805306368) are
// ever matched.
//
// historyOnReset decides from each server's rootDSE supportedControl
// whether a reset carries the policy hints control (critical, encoded with
// BER TRUE 0xFF): auto sends it where advertised, require refuses resets
// elsewhere (password_policy, detail policy), off never sends it.
package directory
