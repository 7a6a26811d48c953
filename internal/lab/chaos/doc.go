// Package chaos is the chaos suite: Go tests that run real agents
// (`wbagent run` processes) against a real Samba AD DC and devbus, break
// something while requests are in flight, and then check the invariants
// the protocol promises:
//
//   - every valid request is answered (results re-sent after a crash are
//     byte-for-byte the first result), or dead-lettered with a reason, or
//     still queued if it has not expired;
//   - no request is applied twice: each account's unicodePwd version
//     (replPropertyMetaData) grew by exactly the number of requests
//     answered ok for it;
//   - every account's password is the one the last applied request set
//     (checked by binding as the user);
//   - every agent's audit chain verifies and holds the answered requests;
//   - no password used appears in any file the run wrote.
//
// The faults: the DC killed mid-batch and restarted, slowed past the lock
// duration (Proxy, a delaying TCP proxy), unreachable past the retry
// budget; devbus dropping every connection every few seconds, forcing
// links off, refusing CBS once; the agent killed -9 at random points five
// times; two and three agents with one killed; the audit file and the
// ledger on a full disk (a tmpfs, root only); a storm of bad messages among
// valid ones;
// clock skew at and beyond maxClockSkew.
//
// `go test ./internal/lab/chaos` (and so `make test`) runs the short form;
// `make chaos` runs the full one (go test -args -full, or WBAGENT_CHAOS=full).
// `go test -short` skips the suite, which needs Samba (`make deps`).
package chaos
