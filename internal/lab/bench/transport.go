package bench

import (
	"context"
	"fmt"
	"slices"
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
	b.rep.TransportRatios = transportRatios(b.rep.Transport)
	for _, tr := range b.rep.TransportRatios {
		b.logf("%s", tr.line())
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

// TransportRatio compares one transport's runs with plain AMQP's runs of
// the same rounds, on one devbus.
type TransportRatio struct {
	// Transport is the compared transport, e.g. "websockets+TLS".
	Transport string `json:"transport"`
	// Rounds is the number of rounds compared.
	Rounds int `json:"rounds"`
	// Throughput is the transport's summed throughput over plain AMQP's
	// (rounds alternate, so drift on the machine hits both).
	Throughput float64 `json:"throughput"`
	// RoundMin, RoundMedian and RoundMax are the ratios of each round
	// (round r of the transport over round r of plain AMQP).
	RoundMin    float64 `json:"roundMin"`
	RoundMedian float64 `json:"roundMedian"`
	RoundMax    float64 `json:"roundMax"`
	// AgentCPUPerRequestUs and PlainAgentCPUPerRequestUs are the agent's
	// own CPU per request, averaged over the rounds.
	AgentCPUPerRequestUs      float64 `json:"agentCpuPerRequestUs"`
	PlainAgentCPUPerRequestUs float64 `json:"plainAgentCpuPerRequestUs"`
	// AgentCPURatio is plain AMQP's agent CPU per request over the
	// transport's: the throughput ratio where the agent's CPU alone is the
	// limit, as on an agent's host talking to a real namespace (the
	// broker is not on that host).
	AgentCPURatio float64 `json:"agentCpuRatio"`
	// BrokerCPUPerRequestUs and PlainBrokerCPUPerRequestUs are devbus's
	// CPU per request, averaged over the rounds.
	BrokerCPUPerRequestUs      float64 `json:"brokerCpuPerRequestUs"`
	PlainBrokerCPUPerRequestUs float64 `json:"plainBrokerCpuPerRequestUs"`
}

// transportRatios compares each transport of rows (the transport step's,
// in the order it ran them) with plain AMQP, round by round; nil without
// plain rows.
func transportRatios(rows []Row) []TransportRatio {
	byKind := map[string][]Row{}
	for _, r := range rows {
		for _, k := range transportKinds {
			if strings.HasPrefix(r.Name, k+",") {
				byKind[k] = append(byKind[k], r)
			}
		}
	}
	plain := byKind[transportPlain]
	var out []TransportRatio
	for _, k := range transportKinds {
		rs := byKind[k]
		n := min(len(rs), len(plain))
		if k == transportPlain || n == 0 {
			continue
		}
		tr := TransportRatio{Transport: k, Rounds: n}
		var sum, plainSum, cpu, plainCPU, broker, plainBroker float64
		var perRound []float64
		for i := range n {
			sum += rs[i].PerSecond
			plainSum += plain[i].PerSecond
			if plain[i].PerSecond > 0 {
				perRound = append(perRound, rs[i].PerSecond/plain[i].PerSecond)
			}
			if rs[i].Agent != nil && plain[i].Agent != nil {
				cpu += rs[i].Agent.CPUPerRequestUs
				plainCPU += plain[i].Agent.CPUPerRequestUs
			}
			broker += rs[i].BrokerCPUPerRequestUs
			plainBroker += plain[i].BrokerCPUPerRequestUs
		}
		if plainSum > 0 {
			tr.Throughput = round(sum/plainSum, 3)
		}
		if len(perRound) > 0 {
			slices.Sort(perRound)
			tr.RoundMin, tr.RoundMax = round(perRound[0], 3), round(perRound[len(perRound)-1], 3)
			m := len(perRound) / 2
			med := perRound[m]
			if len(perRound)%2 == 0 {
				med = (perRound[m-1] + perRound[m]) / 2
			}
			tr.RoundMedian = round(med, 3)
		}
		tr.AgentCPUPerRequestUs = round(cpu/float64(n), 0)
		tr.PlainAgentCPUPerRequestUs = round(plainCPU/float64(n), 0)
		if cpu > 0 {
			tr.AgentCPURatio = round(plainCPU/cpu, 3)
		}
		tr.BrokerCPUPerRequestUs = round(broker/float64(n), 0)
		tr.PlainBrokerCPUPerRequestUs = round(plainBroker/float64(n), 0)
		out = append(out, tr)
	}
	return out
}

// line is the ratio as the report prints it.
func (tr TransportRatio) line() string {
	return fmt.Sprintf("%s ÷ plain AMQP, %d rounds: throughput %.2f (rounds min %.2f, median %.2f, max %.2f); "+
		"agent CPU %.0f vs %.0f µs/req, ratio %.2f; devbus CPU %.0f vs %.0f µs/req",
		tr.Transport, tr.Rounds, tr.Throughput, tr.RoundMin, tr.RoundMedian, tr.RoundMax,
		tr.AgentCPUPerRequestUs, tr.PlainAgentCPUPerRequestUs, tr.AgentCPURatio,
		tr.BrokerCPUPerRequestUs, tr.PlainBrokerCPUPerRequestUs)
}
