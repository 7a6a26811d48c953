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
