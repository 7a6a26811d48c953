package bench

import (
	"context"
	"fmt"
	"strings"

	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
)

// Transports the transport step compares: plain AMQP (the emulator path
// every other run takes) and AMQP over WebSockets over TLS, the path a
// proxied production agent takes.
const (
	transportPlain = "plain AMQP"
	transportTLS   = "AMQP over TLS"
	transportWS    = "websockets+TLS"
)

// transportKinds are run in this order each round. AMQP over TLS is
// there to tell TLS's share of the cost from the WebSocket framing's.
var transportKinds = []string{transportPlain, transportTLS, transportWS}

// transportQueue names the backlog queue of one transport's round.
func transportQueue(kind string, round int) string {
	switch kind {
	case transportWS:
		return fmt.Sprintf("tr-ws-%d", round)
	case transportTLS:
		return fmt.Sprintf("tr-tls-%d", round)
	}
	return fmt.Sprintf("tr-amqp-%d", round)
}

// transportQueues are the transport step's queues, with reply queues.
func transportQueues(rounds int) []devbus.QueueConfig {
	var qs []devbus.QueueConfig
	for r := 0; r < rounds; r++ {
		for _, k := range transportKinds {
			q := transportQueue(k, r)
			qs = append(qs, devbus.QueueConfig{Name: q}, devbus.QueueConfig{Name: q + "-replies"})
		}
	}
	return qs
}

// transport drains the same backlog through a capacity agent on plain
// AMQP, AMQP over TLS and WebSockets over TLS, in turn, rounds times, on
// one devbus: the ratio of the WebSocket path's throughput to plain
// AMQP's is its cost (TLS, framing, the extra copy of the WebSocket
// conn), on both ends, since devbus shares the machine.
func (b *bench) transport(ctx context.Context) error {
	if b.bus.WebSocketConnectionString() == nil || b.bus.TLSConnectionString() == nil {
		return fmt.Errorf("the bench's devbus has no TLS or WebSocket listener")
	}
	n := b.s.capacity
	for r := 0; r < b.s.rounds; r++ {
		for _, kind := range transportKinds {
			var t *agentTransport
			switch kind {
			case transportWS:
				t = &agentTransport{
					extra: fmt.Sprintf("  transport: %s\n  proxy: none\n  tls: {caFile: %q}\n", config.TransportWebSockets,
						b.bus.CAFile()),
					env: testbed.EnvConnection + "=" + b.bus.WebSocketConnectionString().Reveal(),
				}
			case transportTLS:
				t = &agentTransport{
					extra: fmt.Sprintf("  transport: %s\n  tls: {caFile: %q}\n", config.TransportAMQP, b.bus.CAFile()),
					env:   testbed.EnvConnection + "=" + b.bus.TLSConnectionString().Reveal(),
				}
			}
			row, err := b.backlogOver(ctx, transportQueue(kind, r), b.xwing, false, benchMaxConcurrent, benchIdle, n, t)
			if err != nil {
				return fmt.Errorf("%s: %w", kind, err)
			}
			row.Name = fmt.Sprintf("%s, x-wing plain queue, round %d", kind, r+1)
			b.logf("%s: %.0f/s, %.0f µs CPU/req, peak RSS %.1f MiB", row.Name, row.PerSecond, row.Agent.CPUPerRequestUs, row.Agent.PeakRSSMB)
			b.rep.Transport = append(b.rep.Transport, row)
		}
	}
	return nil
}

// agentTransport is a capacity agent's servicebus settings beyond the
// plain connection string: more config lines, and the environment entry
// with the connection string they need.
type agentTransport struct {
	extra string
	env   string
}

// transportRatio is the summed throughput of the WebSocket runs over the
// plain ones' (rounds alternate, so drift on the machine hits both);
// zero without both.
func transportRatio(rows []Row) float64 {
	var ws, plain float64
	for _, r := range rows {
		switch {
		case strings.HasPrefix(r.Name, transportWS):
			ws += r.PerSecond
		case strings.HasPrefix(r.Name, transportPlain):
			plain += r.PerSecond
		}
	}
	if ws == 0 || plain == 0 {
		return 0
	}
	return ws / plain
}
