// Package devbus is a local Service Bus: an AMQP 1.0 broker that the
// unmodified azservicebus SDK (and other Service Bus clients, such as the
// JavaScript @azure/service-bus) use over plain TCP with a connection
// string ending in UseDevelopmentEmulator=true, and, so that the SDK takes
// its production path, over TLS and WebSockets too (below). Tests start it
// on loopback; `wbagent devbus` runs it as a process.
//
// # What it implements
//
// SASL ANONYMOUS, connections/sessions/links with session and link flow
// control, multi-frame transfers, idle timeouts and heartbeats; CBS
// put-token with real shared-access-signature validation (HMAC-SHA256 of
// the URL-encoded resource and expiry, key name and expiry checked, 401
// otherwise), and links refused with amqp:unauthorized-access until a
// token covers their entity; queues and their "<queue>/$DeadLetterQueue";
// sends (single and batched); peek-lock receiving with lock timers, lock
// renewal, complete/abandon/defer/dead-letter through link dispositions
// and through $management update-disposition; lock lost
// (com.microsoft:message-lock-lost, status 410) on expired locks; delivery
// counts and the maximum delivery count (dead-letter reason
// MaxDeliveryCountExceeded); time to live (dropped, or dead-lettered with
// TTLExpiredException); receive-and-delete; duplicate detection on
// MessageID within a window; sessions (session filter, next available,
// session lock and renewal, session state, in-order delivery, one receiver
// per session); $management peek-message, receive-by-sequence-number
// (deferred messages) and get-message-sessions.
//
// Options.TLSAddr and Options.WSAddr add listeners for AMQP over TLS and
// over WebSockets over TLS (WebSocketPath, WebSocketSubprotocol), with a
// CA devbus issues itself (Options.TLSDir, CACertPEM); all listeners
// serve one broker state. Options.Entra adds an Entra ID stand-in on
// them (AuthorityHost): a token endpoint for client secrets and
// certificate client assertions whose tokens put-token accepts as type
// jwt, with Listen and Send rights from their roles. A link needs the
// right for its direction, and a link whose tokens have all expired is
// detached with amqp:unauthorized-access.
//
// Not implemented: topics and subscriptions, scheduled messages (the
// schedule-message operation is refused, and a ScheduledEnqueueTime on a
// sent message is ignored: it is delivered at once), transactions and
// partitions.
//
// # Using it from tests
//
//	srv, err := devbus.Start(ctx, devbus.Options{Queues: []devbus.QueueConfig{
//		{Name: "requests", RequiresSession: true, LockDuration: 5 * time.Second},
//		{Name: "results"},
//	}})
//	client, err := azservicebus.NewClientFromConnectionString(srv.ConnectionString().Reveal(),
//		&azservicebus.ClientOptions{RetryOptions: azservicebus.RetryOptions{RetryDelay: 50 * time.Millisecond}})
//
// The server closes when ctx ends or on Close. Set short RetryOptions in
// tests: the SDK's defaults wait seconds between retries.
//
// # Inspection
//
// Stats, Depth, Messages, DeadLetters (with reason, description and
// source), Sessions, SessionState, Connections and Queues describe the
// broker's state for assertions. MessageInfo.DeliveryCount is the number
// of deliveries so far; LockToken is the token the SDK reports.
//
// # Fault injection
//
//   - DropConnection / DropAllConnections cut sockets without a close frame;
//     CloseAllConnections closes with amqp:connection:forced.
//   - DetachLinks detaches an entity's links with CondDetachForced
//     (amqp:link:detach-forced) or CondServerBusy (com.microsoft:server-busy).
//   - SetResponseDelay delays (or, negative, withholds) $cbs and $management
//     responses and settlement confirmations.
//   - FailCBS answers the next put-token requests with an error status.
//   - ExpireLocks / ExpireLock end message locks now; ExpireSessionLock ends
//     a session lock (its link is detached with session-lock-lost).
//   - PauseDispatch / ResumeDispatch stop and restart delivery of a queue.
//   - StallConnections / StallConnection / StallReceivers silence
//     connections without a word: heartbeats go on, nothing else does, as
//     when an SDK receiver stops delivering; new connections are served.
//
// # Behaviour worth knowing
//
// Lock tokens travel as delivery tags in .NET GUID byte order, as Service
// Bus sends them. A dead-letter is confirmed with a Rejected state without
// an error (with one the SDK retries it). A message delivered on a link
// that then goes away (detach, dropped connection) stays locked until its
// lock expires or it is settled through $management, as on Service Bus;
// a session's messages are released as soon as its receiver goes. After a
// dropped connection the SDK can block in a settle call until its context
// ends: callers bound settles and rely on redelivery.
package devbus
