// Package writeback is the heart of the agent: it takes one delivered
// request message and decides, once, everything that happens to it —
// protocol v1 from authentication to the audit line — and returns an
// Outcome for the transport (internal/bus) to carry out: the signed result
// to send (or none) and how to settle the message. It knows neither LDAP nor
// AMQP: the directory, the ledger, the audit trail, the session state and
// the clock are small interfaces, faked in tests.
//
// One delivery goes through these steps (Handler.Handle):
//
//  1. Open (protocol.Opener): size and content type, signature, strict
//     JSON, times, decryption. Malformed and unauthenticated messages are
//     dead-lettered without a result (their ReplyTo is not trusted); an
//     invalid request gets an invalid_request result and is dead-lettered;
//     an expired one goes on to step 2 but never writes.
//  2. Claim in the local ledger (§7). A recorded result is sent again
//     (replayed) with no second write. Another delivery of the same id in
//     flight here leaves this one for redelivery.
//  3. On session queues, the session state, read and written through
//     Options.Seal: only records whose MAC verifies count (anyone with
//     Listen rights can write the state); the rest are audited as
//     EventStateRefused and ignored. A result another agent recorded is
//     replayed; otherwise `applying <id> at <time>` is written before the
//     directory write.
//  4. The directory write, with transient failures retried with exponential
//     backoff and jitter inside the retry budget. When an earlier attempt
//     (a crash, a timeout) may have written, pwdLastSet decides whether it
//     did (see decide in run.go for the rule per op). When the budget is
//     spent the message is abandoned (directory_unavailable); once the
//     request has expired it is answered `expired` instead.
//  5. The result: recorded as done in the ledger and the session state,
//     signed, and sent to ReplyTo; the message is completed.
//  6. The audit record of every outcome, dead-letters and unauthenticated
//     attempts included, written (fsynced) before the outcome is returned.
//     If it cannot be written the outcome becomes Abandon with no reply,
//     and Ready reports the failure. Dead-letters of messages nobody
//     trusted go to Options.Rejections (an aggregator) when it is set.
//
// While the audit trail or the ledger fails, Intake says so, and the
// transport takes no message until a probe write on that disk succeeds.
//
// Directory answers other than the codes of §6 (internal_error) and
// failures of the agent's own machinery (ledger, session state) abandon the
// message after retrying within the budget, so that a persistent failure
// does not burn the queue's delivery count in a tight loop.
//
// API:
//
//	seal, err := writeback.NewSessionSeal(decryptionKeys)
//	h, err := writeback.New(writeback.Options{Agent: name, Opener: o, Directory: d,
//		Ledger: store, Audit: w, SigningKey: k, Seal: seal, Queue: queue,
//		RetryBudget: 45 * time.Second, BackoffInitial: 500 * time.Millisecond,
//		BackoffMax: 8 * time.Second, PostWriteTimeout: 10 * time.Second, Logger: log})
//	out := h.Handle(ctx, writeback.Delivery{Message: m, DeliveryCount: n, Session: st})
//	err = h.Ready()
//	err = h.Intake(ctx) // nil: the transport may take a message
package writeback
