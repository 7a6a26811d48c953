package e2e

import (
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// internal_error, "anything else" of protocol v1 §6, abandoned for
// redelivery: on a session queue whose session state was written by a
// newer agent (an encoding version this one does not know), the agent
// must not overwrite it, so it abandons every delivery, audited as
// internal_error, until the broker's maximum delivery count dead-letters
// the message; the account is never written. (A plain queue has no state
// an outsider can make unreadable: internal_error is reached there only
// by the agent's own machinery failing, which the writeback package's
// tests cover with fakes.)
func TestInternalErrorIsAbandoned(t *testing.T) {
	const queue, replies = "requests-newer", "replies-newer"
	r := newRun(t, true,
		devbus.QueueConfig{Name: queue, RequiresSession: true, LockDuration: 5 * time.Second, MaxDeliveryCount: 2},
		devbus.QueueConfig{Name: replies})
	agent := r.agent("agent-1", func(c *testbed.AgentConfig) { c.Queue = queue; c.RetryBudget = time.Second })
	send, err := testbed.NewSender(r.bus, r.keys, testbed.SenderOptions{Queue: queue, Sessions: true, ReplyQueue: replies, Secrets: dom.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer send.Close()
	u := r.user("newer")
	target := protocol.Target{UserPrincipalName: u.UPN}
	sr, err := send.Client().AcceptSessionForQueue(r.ctx, queue, target.SessionID(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.SetSessionState(r.ctx, []byte("wbagent-session-state 2\nsomething a newer agent wrote\n"), nil); err != nil {
		t.Fatal(err)
	}
	if err := sr.Close(r.ctx); err != nil {
		t.Fatal(err)
	}
	spec := send.Spec(wire.OpReset, target)
	spec.New = dom.Secrets.New()
	m, err := send.Send(r.ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	handled := r.waitHandled([]string{m.MessageID}, agent)[m.MessageID]
	deadline := time.Now().Add(30 * time.Second)
	for len(handled) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		handled = r.waitHandled([]string{m.MessageID}, agent)[m.MessageID]
	}
	recs := r.auditByID(agent)[m.MessageID]
	if len(handled) != 2 || len(recs) != 2 {
		t.Fatalf("handled %d times, %d audit lines; want 2 deliveries (the queue's maximum), each audited", len(handled), len(recs))
	}
	for i := range handled {
		if h, rec := handled[i], recs[i]; h.Settle != "abandon" || h.Code != wire.CodeInternalError ||
			rec.Event != audit.EventAbandoned || rec.Code != wire.CodeInternalError {
			t.Errorf("delivery %d: settled %s/%s, audited %s/%s; want abandon, internal_error", i+1, h.Settle, h.Code, rec.Event, rec.Code)
		}
	}
	var dead []testbed.DeadLetter
	for len(dead) == 0 && time.Now().Before(deadline) {
		if dead, err = send.DeadLetters(r.ctx, 500*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	if len(dead) != 1 || dead[0].MessageID != m.MessageID || dead[0].Reason != "MaxDeliveryCountExceeded" {
		t.Fatalf("dead letters %+v: want the message, dead-lettered by the broker after its last delivery", dead)
	}
	for _, l := range dom.Secrets.ScanText("dead-letter description", []byte(dead[0].Reason+" "+dead[0].Description)) {
		t.Errorf("password leak: %s", l)
	}
	if n := len(send.Replies(m.MessageID)); n != 0 {
		t.Errorf("%d results for a request that was never decided", n)
	}
	if err := dom.CheckPassword(r.ctx, u, u.Password); err != nil {
		t.Errorf("the account was written: %v", err)
	}
}
