// Package bus connects the writeback pipeline to an Azure Service Bus queue
// through the azservicebus SDK. It receives requests in peek-lock mode,
// hands each one to a writeback.Handler, and carries out the Outcome the
// handler decided: send the signed result to the request's ReplyTo, then
// complete, abandon or dead-letter the message. It decides nothing about a
// request itself.
//
// Two queue shapes are served (servicebus.sessions in the config):
//
//   - Session queues: up to MaxConcurrent sessions are held at once, each
//     accepted with AcceptNextSessionForQueue; a session's messages are
//     handled one at a time, in order, and the session is released as soon
//     as a peek finds it empty (or, when the peek fails, once no message
//     arrives for SessionIdleTimeout). The session lock is renewed
//     while the session is held, and the session state is offered to the
//     handler (protocol v1 §7).
//   - Plain queues: up to MaxConcurrent messages are in flight at once, each
//     with its message lock renewed while its writeback runs.
//
// Every settle, reply send, lock renewal and session-state call is bounded
// by SettleTimeout: after a dropped connection such a call can otherwise
// block for good, while lock expiry and redelivery make giving up safe.
// Reconnects are the SDK's, with the retry options given to NewClient.
//
// How the namespace is reached is a Transport: AMQP over TLS on 5671, or
// AMQP over WebSockets over TLS on 443 (the SDK's NewWebSocketConn), which
// alone goes through an HTTP proxy (CONNECT, optional basic auth); a
// private CA adds to the system roots and verification is never off.
// UseDevelopmentEmulator (plain AMQP) is refused for any endpoint that is
// not loopback. NewCredential builds the Entra ID credentials, whose token
// requests take the same proxy and CA.
//
// Watched wraps a Consumer with a watchdog: when the broker stays silent
// for its period while the consumer receives, it rebuilds the client (a
// new connection) and the consumer.
//
// The API:
//
//	client, err := bus.NewClient(bus.Connection{ConnectionString: cs, Retry: r})
//	c, err := bus.New(client, handler, bus.Options{Queue: "password-writeback", Sessions: true, MaxConcurrent: 8,
//		SettleTimeout: 20 * time.Second, SessionIdleTimeout: 5 * time.Second, AcceptTimeout: 30 * time.Second,
//		ErrorBackoff: time.Second, Logger: log}) // every value explicit: the config owns the defaults
//	c.Start()            // returns at once; receiving runs in goroutines
//	err = c.Ready()      // nil while the bus answers
//	err = c.Stop(ctx)    // stop receiving, finish in-flight work until ctx ends, abandon the rest
//	client.Close(ctx)
package bus
