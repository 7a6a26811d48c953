package e2e

import (
	"bytes"
	"context"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// waitReplies waits until request id has at least n results.
func (r *run) waitReplies(id string, n int) []testbed.Reply {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.ctx, 60*time.Second)
	defer cancel()
	for {
		if got := r.send.Replies(id); len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			r.t.Fatalf("request %s: %d results within 60s, want %d", id, len(r.send.Replies(id)), n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// applied counts the "writeback applied" lines (debug level) for target
// in the agents' logs: the directory writes that took effect.
func applied(t *testing.T, target string, agents ...*testbed.Agent) int {
	t.Helper()
	n := 0
	for _, a := range agents {
		lines, err := testbed.ReadLog(a.Files.Log)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			if l.Msg == "writeback applied" && l.Str("target") == target {
				n++
			}
		}
	}
	return n
}

// The same request message sent twice, with the broker's duplicate
// detection off: the change is applied once and the second delivery gets
// the first result again, byte for byte. On the session queue the second
// delivery goes to another agent with an empty ledger, which finds the
// result in the session state (protocol v1 §7); on the plain queue the
// agent's own ledger answers.
func TestReplay(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		r := newRun(t, sessions)
		debug := func(c *testbed.AgentConfig) { c.LogLevel = "debug" }
		first := r.agent("agent-a", debug)
		u := r.user("replay")
		newPw := dom.Secrets.New()
		target := protocol.Target{UserPrincipalName: u.UPN}
		m := r.sendAll(r.spec(wire.OpChange, target, newPw, u.Password))[0]
		r.verify([]outcome{{what: "first delivery", msg: m, op: "change", code: wire.CodeOK, result: true,
			settle: "complete", event: "result", dn: u.DN}}, first)
		set, err := dom.DC.Entry(r.ctx, u.DN, "pwdLastSet")
		if err != nil {
			t.Fatal(err)
		}
		second := first
		if sessions {
			if err := first.Stop(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			second = r.agent("agent-b", debug)
		}
		if err := r.send.SendMessage(r.ctx, m); err != nil {
			t.Fatal(err)
		}
		replies := r.waitReplies(m.MessageID, 2)
		if len(replies) != 2 || !bytes.Equal(replies[0].Message.Body, replies[1].Message.Body) {
			t.Fatalf("second result differs from the first:\n%s\n%s", replies[0].Message.Body, replies[1].Message.Body)
		}
		agents := []*testbed.Agent{first}
		if second != first {
			agents = append(agents, second)
		}
		handled := r.waitHandled([]string{m.MessageID}, agents...)[m.MessageID]
		recs := r.auditByID(agents...)[m.MessageID]
		if len(handled) != 2 || len(recs) != 2 {
			t.Fatalf("handled %d times with %d audit lines, want 2 and 2", len(handled), len(recs))
		}
		for i, want := range []string{audit.EventResult, audit.EventReplayed} {
			if recs[i].Event != want || recs[i].Code != wire.CodeOK || handled[i].Settle != "complete" {
				t.Errorf("delivery %d: audit %s/%s settled %s, want %s/ok complete", i+1, recs[i].Event, recs[i].Code, handled[i].Settle, want)
			}
		}
		if second != first && recs[1].Agent != second.Files.Name {
			t.Errorf("the replay was audited by %s, want %s", recs[1].Agent, second.Files.Name)
		}
		if n := applied(t, target.Key(), agents...); n != 1 {
			t.Errorf("the directory took %d writes, want 1", n)
		}
		again, err := dom.DC.Entry(r.ctx, u.DN, "pwdLastSet")
		if err != nil {
			t.Fatal(err)
		}
		if again.GetAttributeValue("pwdLastSet") != set.GetAttributeValue("pwdLastSet") {
			t.Error("pwdLastSet moved: the replay wrote the password again")
		}
		if err := dom.CheckPassword(r.ctx, u, newPw); err != nil {
			t.Error(err)
		}
	})
}
