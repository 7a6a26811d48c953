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
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// kill -9 of the agent in the middle of a batch, then a restart with the
// same state folder. On the session queue every user gets a chain of
// changes, each naming the password the previous one set: a lost request,
// a reordered one or one applied twice would fail the next with
// wrong_old_password, so all results ok and the last password working
// prove nothing was lost or applied twice. On the plain queue each user
// gets one reset. Every request is answered; a request answered twice (its
// result sent, then the crash before the completion) gets the same result
// byte for byte; no request has two result lines in the audit trail.
func TestKillMidBatch(t *testing.T) {
	testkit.ForQueueKinds(t, killMidBatch)
}

func killMidBatch(t *testing.T, sessions bool) {
	users, chain := 20, 3
	if !sessions {
		users, chain = 60, 1
	}
	r := newRun(t, sessions)
	accounts, err := dom.AddUsers(r.ctx, dom.UniqueName("crash"), dom.Staff, users)
	if err != nil {
		t.Fatal(err)
	}
	agent := r.agent("agent-1", func(c *testbed.AgentConfig) { c.MaxConcurrent = 4 })
	current := make([]*secret.Secret, users)
	for i, u := range accounts {
		current[i] = u.Password
	}
	var all []string
	for k := 0; k < chain; k++ {
		for i, u := range accounts {
			next := dom.Secrets.New()
			op, old := wire.OpReset, (*secret.Secret)(nil)
			if sessions {
				op, old = wire.OpChange, current[i]
			}
			m := r.sendAll(r.spec(op, protocol.Target{UserPrincipalName: u.UPN}, next, old))[0]
			current[i] = next
			all = append(all, m.MessageID)
		}
	}
	// Kill once a third of the batch is answered.
	deadline := time.Now().Add(60 * time.Second)
	for answered(r, all) < len(all)/3 {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d answered within 60s", answered(r, all), len(all))
		}
		time.Sleep(5 * time.Millisecond)
	}
	agent.Kill()
	at := answered(r, all)
	t.Logf("killed the agent with %d of %d requests answered", at, len(all))
	if at == len(all) {
		t.Fatal("the batch was over before the kill: nothing was tested")
	}
	if err := agent.Restart(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
	defer cancel()
	if err := r.send.WaitAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	recs := r.auditByID(agent)
	twice := 0
	for _, id := range all {
		replies := r.send.Replies(id)
		for _, rep := range replies {
			if rep.Result.Code != wire.CodeOK {
				t.Errorf("request %s: %s: a request was lost, reordered or applied twice", id, rep.Result.Code)
			}
			if !bytes.Equal(rep.Message.Body, replies[0].Message.Body) {
				t.Errorf("request %s answered twice with different results", id)
			}
		}
		if len(replies) > 1 {
			twice++
		}
		results := 0
		for _, rec := range recs[id] {
			if rec.Event == audit.EventResult {
				results++
			}
		}
		if results != 1 {
			t.Errorf("request %s: %d result lines in the audit trail, want 1", id, results)
		}
	}
	t.Logf("%d requests answered twice (result sent before the kill, message not yet completed)", twice)
	for i, u := range accounts {
		if err := dom.CheckPassword(r.ctx, u, current[i]); err != nil {
			t.Errorf("%s does not have its last password: %v", u.SAMAccountName, err)
		}
	}
	if err := agent.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	// The audit trail survived the kill: its chain still verifies.
	if out, err := runCLI(r.ctx, "audit", "verify", agent.Files.Audit); err != nil {
		t.Fatalf("wbagent audit verify after kill -9: %v\n%s", err, out)
	}
}

// answered counts the requests of ids with a result.
func answered(r *run, ids []string) int {
	n := 0
	for _, id := range ids {
		if len(r.send.Replies(id)) > 0 {
			n++
		}
	}
	return n
}
