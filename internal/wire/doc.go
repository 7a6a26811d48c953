// Package wire is the vocabulary of protocol v1 (shared/design/protocol-v1.md)
// that every other package speaks: the ops a request asks for (§3), the
// forms a target takes (§4), the result codes and their details (§6) and
// the dead-letter reasons (§8). Each word is spelled here once; protocol,
// directory, writeback, bus, audit, telemetry and the CLI import it, and
// audit event ids and metric labels are derived from its tables, so a code
// added here is one a sender, the directory, the audit trail and the
// metrics all know.
//
// It also holds the two values that cross from writeback to the directory
// (Change, Applied), so neither side copies the other's.
//
// It is a leaf but for secret, which holds the passwords a Change carries.
package wire
