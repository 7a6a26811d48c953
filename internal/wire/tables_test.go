package wire_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"wbagent/internal/audit"
	"wbagent/internal/telemetry"
	"wbagent/internal/wire"
)

// TestEveryCodeHasAnEventIDAndALabel: the audit trail and the metrics
// derive their tables from the vocabulary, so every code and dead-letter
// reason has its own Event Log id and its own metric label, never the
// "other" slot.
func TestEveryCodeHasAnEventIDAndALabel(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := telemetry.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]string{}
	check := func(event, code string) {
		for _, op := range wire.Ops {
			id := audit.EventID(string(op), event, code)
			if id%100 == 99 {
				t.Errorf("%s %s %s: event id %d is the other-code slot", op, event, code, id)
			}
			if prev, dup := seen[id]; dup {
				t.Errorf("%s %s %s: event id %d is also %s", op, event, code, id, prev)
			}
			seen[id] = string(op) + " " + event + " " + code
		}
	}
	for _, code := range wire.Codes {
		check(audit.EventResult, code)
		for _, op := range wire.Ops {
			m.Request(string(op), code, 0)
		}
	}
	for _, r := range wire.DeadLetterReasons {
		check(audit.EventDeadLettered, r)
		m.DeadLetter(r)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if labels[f.GetName()+"/"+l.GetName()] == nil {
					labels[f.GetName()+"/"+l.GetName()] = map[string]float64{}
				}
				labels[f.GetName()+"/"+l.GetName()][l.GetValue()] += metric.GetCounter().GetValue()
			}
		}
	}
	for _, code := range wire.Codes {
		if got := labels["wbagent_requests_total/code"][code]; got != float64(len(wire.Ops)) {
			t.Errorf("requests_total{code=%q} = %v, want %d", code, got, len(wire.Ops))
		}
	}
	for _, r := range wire.DeadLetterReasons {
		if got := labels["wbagent_dead_letters_total/reason"][r]; got != 1 {
			t.Errorf("dead_letters_total{reason=%q} = %v, want 1", r, got)
		}
	}
	if n := labels["wbagent_requests_total/code"]["other"]; n != 0 {
		t.Errorf("%v requests counted as code other", n)
	}
}

func TestKnownCodeAndRetryable(t *testing.T) {
	for _, c := range wire.Codes {
		if !wire.KnownCode(c) {
			t.Errorf("%s not known", c)
		}
	}
	if wire.KnownCode(wire.ReasonMalformed) || wire.KnownCode("") {
		t.Error("a dead-letter reason or nothing counts as a result code")
	}
	for c, want := range map[string]bool{wire.CodeOK: false, wire.CodeExpired: true, wire.CodeDirectoryUnavailable: true, wire.CodeInternalError: true, wire.CodeAccessDenied: false} {
		if wire.Retryable(c) != want {
			t.Errorf("Retryable(%s) = %v", c, !want)
		}
	}
	for _, op := range wire.Ops {
		if !op.Valid() {
			t.Errorf("%s not valid", op)
		}
	}
	if wire.Op("delete").Valid() {
		t.Error("an unknown op is valid")
	}
}
