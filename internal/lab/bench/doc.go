// Package bench is `make bench`: figures, from a run anyone can repeat, for
// how fast the agent writes passwords back and what it costs. It judges
// nothing by wall-clock time; it measures and reports.
//
// Run provisions a throwaway Samba AD DC (internal/lab/testbed) and a
// `wbagent devbus` process on loopback and measures:
//
//  1. the directory ceiling: bare go-ldap password sets (reset and
//     change) at concurrency 1 and 4, bound as the agent's service account;
//  2. end to end: requests/s and send→result latency through devbus →
//     `wbagent run` → the DC, on a plain and a session queue, at
//     concurrency 1 and 4, alternating round by round with (1) so that the
//     shared machine's load touches both alike; the ratio to (1);
//  3. agent capacity: a capacity agent — the agent's pipeline built from
//     the same config file, with the directory replaced by one that answers
//     at once — drains a backlog, for both HPKE suites, plain and session
//     queues; requests/s, agent CPU µs per request and peak RSS, read from
//     /proc of the agent's own process (and the broker's CPU);
//  4. growth: p99 and peak RSS with 1, 8 and 64 concurrent sessions, and
//     the time to drain 10,000 queued requests;
//  5. transport: the same backlog drained by a capacity agent over plain
//     AMQP, AMQP over TLS and AMQP over WebSockets over TLS, in turn, on
//     one devbus: what TLS and the WebSocket framing cost, on both ends.
//
// The capacity agent is this package's RunCapacityAgent, run as a child
// process of the benchmark binary (cmd wbbench, CapacityAgentCommand), so
// that its CPU time and VmHWM belong to it alone.
//
// API:
//
//	rep, err := bench.Run(ctx, bench.Options{Log: os.Stderr})
//	rep.WriteMarkdown(os.Stdout); rep.WriteJSON(f)
//	s, err := bench.ReadProc(pid)           // CPU time, RSS, peak RSS of any process
//	pid, err := bench.FindProcess(args...)   // a process by its command line
//	c, err := bench.NewClient(bus, keys, queue, sessions, replyQueue) // load generator
package bench
