// Package audit writes the agent's audit trail: one JSON line per outcome,
// hash-chained so that a changed, removed, inserted or reordered line is
// found by Verify, and fsynced before Record returns, so a message is never
// completed without its line on disk.
//
// # Line format
//
// Each line is a JSON object with the members time, event, requestId, op,
// target (as the request gave it), dn, objectGUID, actor, senderKid, code,
// detail, count, dc, attempts, durationMs, agent, prev and hash, in that order
// (empty optional members left out). The chain:
//
//   - body = the line's JSON without its hash member, i.e. the line with
//     `,"hash":"<hex>"` removed before the closing brace;
//   - hash = lowercase hex SHA-256 of body's exact bytes;
//   - prev = the hash of the line before; for the first line of a file,
//     Genesis (64 zeros).
//
// A verifier needs no canonical JSON: it cuts the fixed-length hash member
// off the end and rehashes the bytes. An example line:
//
//	{"time":"2026-11-24T18:00:01.234Z","event":"result","requestId":"0b6f…","op":"reset","target":{"objectGUID":"3ee3…"},"code":"ok","attempts":1,"durationMs":41,"agent":"dc-site-a-1","prev":"0000…","hash":"9c1e…"}
//
// # Failures and crashes
//
// A failed write or fsync (a full disk, an I/O error) makes Record return an
// error and cuts the file back to its last whole line, so no half line
// breaks the chain; the next Record writes where the failed one would have,
// and Ready reports the failure until a write (or a probe write) succeeds.
// On start, Open continues the chain from the file's last line; a torn last
// line left by a crash is moved to FILE.torn (it was never acknowledged, so
// its message was not completed and will be audited when redelivered).
//
// # Rotation
//
// With Options.MaxSize or MaxAge the writer closes the file before a write
// that would pass the size (or once its first line is older than the age),
// renames it FILE.<UTC time stamp> and goes on in a new FILE. The chain does
// not restart: the new file's first prev is the old file's last hash, so
// VerifySet (and `wbagent audit verify FILE`, which finds the rotated files
// with RotatedFiles) checks the set as one chain, and a rotated file that
// is removed, reordered or changed breaks it. Rotated files are kept;
// archive them as policy says, and keep the last hash of what was archived
// away (VerifySet's start).
//
// # Floods
//
// An Aggregator in front of the writer takes the rejections of messages
// nobody trusted: one line per event, code and sender kid per window, then
// a line with the Count of the rest, so a flood costs a few lines a minute.
//
// # API
//
//	w, err := audit.Open(path, audit.Options{Logger: log, Sinks: sinks})
//	err = w.Record(ctx, audit.Record{Event: audit.EventResult, RequestID: id, Op: "reset", Code: "ok", ...})
//	err = w.Ready(ctx) // for /readyz
//	rep, err := audit.Verify(file) // rep.OK(), rep.Lines, rep.Broken, rep.Reason
//	reps, err := audit.VerifySet(append(rotated, path), audit.Genesis)
//
// On Windows, OpenEventLog returns a Sink that writes every record to the
// Event Log under source EventSource, with the stable ids of EventID; other
// systems have no such sink.
package audit
