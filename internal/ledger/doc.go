// Package ledger keeps the "exactly one effect" state of protocol v1 §7: for
// every request id the agent has started, whether its directory write is
// still applying (and since when) or done (and the result it produced).
//
// Two forms of that state exist, for two scopes:
//
//   - Store, a bbolt file in agent.stateDir, is the agent's own memory. It
//     survives kill -9 (every write is an fsynced bbolt transaction), is safe
//     for concurrent use, and forgets records once no redelivery can still
//     be valid (Options.Retention: the protocol's maxLifetime + maxClockSkew).
//     Concurrent writes share one transaction and one fsync (group commit),
//     so the cost per request stays flat under load.
//
//   - SessionState is the codec for the Service Bus session state, which
//     carries the same records between agents on a session queue. One
//     session is one target and its requests run in order, so the state holds
//     only the last few request ids; it is bounded in records and bytes
//     (Service Bus limits the state's size) and drops the oldest first.
//     Anyone holding Listen rights on the queue can write session state, so
//     the agent reads and writes it only through a SessionSeal: every record
//     carries an HMAC-SHA-256, under a key derived from the decryption keys
//     the deployment's agents share, over the queue, the session id, the
//     request id and the record. A record that does not verify is treated
//     as absent.
//
// The API, in the order the pipeline uses it:
//
//	st, err := ledger.Open(dir, ledger.Options{Retention: 17 * time.Minute,
//		PruneInterval: time.Minute, LockTimeout: 2 * time.Second, Logger: log})
//	prev, err := st.MarkApplying(id, now) // ErrInFlight: this agent is already on it
//	switch prev.State {
//	case ledger.Done:     // resend prev.Result, write nothing
//	case ledger.Applying: // an earlier attempt may have written (decide: pwdLastSet >= prev.At)
//	}
//	... directory write ...
//	err = st.MarkDone(id, resultJSON, now) // or st.Release(id) to leave it for redelivery
//
//	seal, err := ledger.NewSessionSeal(keys) // keys: HKDF of the decryption keys
//	ss, refused := seal.Decode(state, ledger.SessionBinding{Queue: q, SessionID: sid}) // audit refused
//	rec, ok := ss.Find(id)
//	ss.Put(ledger.Record{ID: id, State: ledger.Applying, At: now})
//	state, err = seal.Encode(ss, ledger.SessionBinding{Queue: q, SessionID: sid})
package ledger
