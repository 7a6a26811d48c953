package e2e

import (
	"context"
	"fmt"
	"strings"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// outcome is what a test expects for one request message: the result (or
// none), the settlement and the audit line.
type outcome struct {
	what string
	msg  protocol.Message
	// op is the request's op; empty for a message that was never trusted.
	op string
	// code is the result code, or the dead-letter reason of a message that
	// gets no result; detail the result's detail.
	code, detail string
	// result says a signed result is sent to ReplyTo.
	result bool
	// settle is "complete" or "deadletter".
	settle string
	// event is the audit event: result, dead_lettered or replayed.
	event string
	// dn is the account the audit line names; empty when none was resolved.
	dn string
	// rule is a piece of the dead-letter description (the failing rule).
	rule string
	// replyElsewhere says the result went to another receiver (the CLI):
	// this run's sender neither expects nor forbids it.
	replyElsewhere bool
}

// sendAll sends every spec and returns the messages.
func (r *run) sendAll(specs ...protocol.RequestSpec) []protocol.Message {
	r.t.Helper()
	msgs := make([]protocol.Message, len(specs))
	for i, s := range specs {
		m, err := r.send.Send(r.ctx, s)
		if err != nil {
			r.t.Fatal(err)
		}
		msgs[i] = m
	}
	return msgs
}

// byID reads what each agent wrote (its log or its audit trail), grouped
// by request id, across all the agents.
func byID[T any](r *run, agents []*testbed.Agent, read func(*testbed.Agent) ([]T, error), id func(T) string) map[string][]T {
	r.t.Helper()
	out := map[string][]T{}
	for _, a := range agents {
		items, err := read(a)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, it := range items {
			out[id(it)] = append(out[id(it)], it)
		}
	}
	return out
}

// waitHandled waits until the agents' logs show every id carried out
// (settled) at least once, and returns those log lines by id.
func (r *run) waitHandled(ids []string, agents ...*testbed.Agent) map[string][]testbed.Handled {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 90*time.Second)
	defer cancel()
	for {
		got := byID(r, agents, (*testbed.Agent).Handled, func(h testbed.Handled) string {
			if h.RequestID == "" {
				return h.MessageID
			}
			return h.RequestID
		})
		var missing []string
		for _, id := range ids {
			if len(got[id]) == 0 {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 {
			return got
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("not handled within 90s: %d of %d, e.g. %s", len(missing), len(ids), missing[0])
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// auditByID reads every agent's audit file, grouped by request id.
func (r *run) auditByID(agents ...*testbed.Agent) map[string][]audit.Record {
	r.t.Helper()
	return byID(r, agents, (*testbed.Agent).Audit, func(rec audit.Record) string { return rec.RequestID })
}

// verify checks each outcome against what the agents did: the result they
// sent (signature already checked by the sender), how they settled the
// message, the dead-letter queue and the audit line.
func (r *run) verify(outs []outcome, agents ...*testbed.Agent) {
	r.t.Helper()
	ids := make([]string, len(outs))
	var withResult []string
	for i, o := range outs {
		ids[i] = o.msg.MessageID
		if o.result {
			withResult = append(withResult, o.msg.MessageID)
		}
	}
	handled := r.waitHandled(ids, agents...)
	wctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer cancel()
	if err := r.send.WaitAll(wctx, withResult); err != nil {
		r.t.Fatal(err)
	}
	dead, err := r.send.DeadLetters(r.ctx, 300*time.Millisecond)
	if err != nil {
		r.t.Fatal(err)
	}
	deadByID := map[string][]testbed.DeadLetter{}
	for _, d := range dead {
		deadByID[d.MessageID] = append(deadByID[d.MessageID], d)
	}
	audits := r.auditByID(agents...)
	names := map[string]bool{}
	for _, a := range agents {
		names[a.Files.Name] = true
	}
	for _, o := range outs {
		if err := o.check(r.send.Replies(o.msg.MessageID), handled[o.msg.MessageID], deadByID[o.msg.MessageID], audits[o.msg.MessageID], names); err != nil {
			r.t.Errorf("%s (request %s): %v", o.what, o.msg.MessageID, err)
		}
	}
}

func (o outcome) check(replies []testbed.Reply, handled []testbed.Handled, dead []testbed.DeadLetter, recs []audit.Record, agents map[string]bool) error {
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	id := o.msg.MessageID
	// The result.
	switch {
	case o.replyElsewhere:
	case !o.result && len(replies) > 0:
		fail("a result was sent (%s) for a message whose ReplyTo must not be trusted", replies[0].Result.Code)
	case o.result && len(replies) != 1:
		fail("%d results, want exactly 1", len(replies))
	case o.result:
		res := replies[0].Result
		want := protocol.NewResult(id, wire.Op(o.op), o.code, o.detail, res.Agent, res.CompletedAt)
		if res.Code != o.code || res.Detail != o.detail {
			fail("result %s/%s, want %s/%s", res.Code, res.Detail, o.code, o.detail)
		}
		if res.ID != id || res.Status != want.Status || res.Reason != want.Reason || res.Retryable != want.Retryable || res.V != 1 {
			fail("result %+v, want %+v", *res, want)
		}
		if !agents[res.Agent] {
			fail("result names agent %q", res.Agent)
		}
		if m := replies[0].Message; m.CorrelationID != id || m.ContentType != protocol.ResultContentType || m.Subject != protocol.ResultSubject || m.MessageID == id {
			fail("result message fields: correlation %q content type %q subject %q id %q", m.CorrelationID, m.ContentType, m.Subject, m.MessageID)
		}
	}
	// The settlement, as the agent's consumer carried it out.
	if len(handled) != 1 {
		fail("carried out %d times, want once", len(handled))
	} else if h := handled[0]; h.Settle != o.settle || h.Code != o.code {
		fail("settled %s with code %s, want %s with %s", h.Settle, h.Code, o.settle, o.code)
	}
	// The dead-letter queue.
	switch {
	case o.settle == "deadletter" && len(dead) != 1:
		fail("%d dead letters, want 1", len(dead))
	case o.settle == "deadletter":
		d := dead[0]
		if d.Reason != o.code || d.Description == "" || !strings.Contains(d.Description, o.rule) {
			fail("dead letter reason %q description %q, want reason %q describing %q", d.Reason, d.Description, o.code, o.rule)
		}
	case len(dead) > 0:
		fail("dead-lettered (%s: %s), want %s", dead[0].Reason, dead[0].Description, o.settle)
	}
	// The audit line.
	if len(recs) != 1 {
		fail("%d audit lines, want 1", len(recs))
	} else {
		rec := recs[0]
		switch {
		case rec.Event != o.event || rec.Code != o.code || rec.Op != o.op:
			fail("audit event %s code %s op %q, want %s %s %q", rec.Event, rec.Code, rec.Op, o.event, o.code, o.op)
		case rec.DN != o.dn:
			fail("audit DN %q, want %q", rec.DN, o.dn)
		case !agents[rec.Agent]:
			fail("audit agent %q", rec.Agent)
		case o.settle == "deadletter" && (rec.Detail == "" || !strings.Contains(rec.Detail, o.rule)):
			fail("audit detail %q does not name the rule %q", rec.Detail, o.rule)
		case o.settle != "deadletter" && rec.Detail != o.detail:
			fail("audit detail %q, want %q", rec.Detail, o.detail)
		case o.op != "" && (rec.Actor == nil || rec.Actor.ID == "" || rec.SenderKID == "" || len(rec.Target) == 0):
			fail("audit line lacks actor, sender kid or target: %+v", rec)
		case o.dn != "" && rec.ObjectGUID == "":
			fail("audit line names %s without its objectGUID", o.dn)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
