package bench

import (
	"bytes"
	"strings"
	"testing"
)

func TestTransportRatios(t *testing.T) {
	row := func(kind string, round int, perSec, agentUs, brokerUs float64) Row {
		return Row{Name: kind + ", x-wing plain queue, round " + string(rune('0'+round)), Figures: Figures{PerSecond: perSec},
			Agent: &AgentCost{CPUPerRequestUs: agentUs}, BrokerCPUPerRequestUs: brokerUs}
	}
	rows := []Row{
		row(transportPlain, 1, 1000, 1000, 200), row(transportTLS, 1, 950, 1020, 220), row(transportWS, 1, 900, 1100, 260),
		row(transportPlain, 2, 800, 1000, 200), row(transportTLS, 2, 800, 1040, 220), row(transportWS, 2, 800, 1100, 240),
		row(transportPlain, 3, 1200, 1000, 200), row(transportTLS, 3, 1080, 1030, 220), row(transportWS, 3, 600, 1300, 250),
	}
	trs := transportRatios(rows)
	if len(trs) != 2 || trs[0].Transport != transportTLS || trs[1].Transport != transportWS {
		t.Fatalf("ratios %+v, want TLS then websockets", trs)
	}
	ws := trs[1]
	// (900+800+600)/(1000+800+1200); rounds 0.9, 1.0, 0.5; CPU 1000/1166.7.
	if ws.Rounds != 3 || ws.Throughput != 0.767 || ws.RoundMin != 0.5 || ws.RoundMedian != 0.9 || ws.RoundMax != 1 {
		t.Errorf("websockets throughput ratios %+v", ws)
	}
	if ws.AgentCPUPerRequestUs != 1167 || ws.PlainAgentCPUPerRequestUs != 1000 || ws.AgentCPURatio != 0.857 {
		t.Errorf("websockets agent CPU %+v", ws)
	}
	if ws.BrokerCPUPerRequestUs != 250 || ws.PlainBrokerCPUPerRequestUs != 200 {
		t.Errorf("websockets devbus CPU %+v", ws)
	}
	if transportRatios(rows[1:2]) != nil {
		t.Error("ratios without plain rows")
	}

	r := &Report{Transport: rows, TransportRatios: trs}
	r.Targets = targets(r)
	var found bool
	for _, tg := range r.Targets {
		if tg.Name == "websockets+TLS ÷ plain AMQP throughput, agent capacity" {
			found = true
			if tg.Met || !strings.Contains(tg.Got, "0.77 (rounds 0.50–1.00, median 0.90)") {
				t.Errorf("target %+v", tg)
			}
		}
	}
	if !found {
		t.Error("no websockets target")
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "- websockets+TLS ÷ plain AMQP, 3 rounds: throughput 0.77 (rounds min 0.50, median 0.90, max 1.00); agent CPU 1167 vs 1000 µs/req, ratio 0.86; devbus CPU 250 vs 200 µs/req") {
		t.Errorf("markdown lacks the websockets line:\n%s", md.String())
	}
}
