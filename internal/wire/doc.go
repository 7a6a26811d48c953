// Package wire is the vocabulary of protocol v1 (shared/design/protocol-v1.md)
// that every other package speaks: the ops a request asks for (§3), the
// forms a target takes (§4), the result codes and their details (§6) and
// the dead-letter reasons (§8). Each word is spelled here once; protocol,
// directory, writeback, bus, audit, telemetry and the CLI import it, and
// audit event ids and metric labels are derived from its tables, so a code
// added here is one a sender, the directory, the audit trail and the
// metrics all know.
//
// It is a leaf: it imports nothing of the project.
package wire
