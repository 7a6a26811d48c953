package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"wbagent/internal/audit"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/ledger"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
	"wbagent/internal/writeback"
)

// Anyone holding Listen rights on a session queue can write its session
// state with the SDK. A forged `done` (which a trusting agent would re-sign
// as its own result) and a forged `applying` (which would make it answer
// "recovered" from pwdLastSet without writing) are ignored, whether
// written without a MAC, as older agents wrote state, or with a made-up
// one: the request is applied once, answered with the directory's own
// result, and the audit trail shows the refused state before the result.
func TestForgedSessionStateIsIgnored(t *testing.T) {
	r := newRun(t, true)
	agent := r.agent("agent-1", nil)
	const badMAC = "0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	forgeries := []struct {
		name  string
		state func(id string) string
	}{
		{"done, no MAC", func(id string) string {
			res := protocol.NewResult(id, wire.OpReset, wire.CodeUserNotFound, "", "attacker", time.Now())
			body, _ := res.MarshalJSON()
			return ledger.SessionStateHeader + "\ndone " + id + " " + string(body) + "\n"
		}},
		{"done, made-up MAC", func(id string) string {
			res := protocol.NewResult(id, wire.OpReset, wire.CodeUserNotFound, "", "attacker", time.Now())
			body, _ := res.MarshalJSON()
			return ledger.SealedStateHeader + "\n" + badMAC + " done " + id + " " + string(body) + "\n"
		}},
		{"applying, no MAC", func(id string) string {
			return "applying " + id + " at " + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano) + "\n"
		}},
		{"applying, made-up MAC", func(id string) string {
			return ledger.SealedStateHeader + "\n" + badMAC + " applying " + id + " at " + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339Nano) + "\n"
		}},
	}
	type sent struct {
		name string
		u    *testbed.User
		spec protocol.RequestSpec
		m    protocol.Message
	}
	var all []sent
	for _, f := range forgeries {
		u := r.user("forged")
		target := protocol.Target{UserPrincipalName: u.UPN}
		spec := r.send.Spec(wire.OpReset, target)
		spec.ID = uuid.NewString()
		spec.New = dom.Secrets.New()
		// What an outsider with Listen rights does: take the session, set
		// its state, let go.
		sr, err := r.send.Client().AcceptSessionForQueue(r.ctx, requestQueue, target.SessionID(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sr.SetSessionState(r.ctx, []byte(f.state(spec.ID)), nil); err != nil {
			t.Fatal(err)
		}
		if err := sr.Close(r.ctx); err != nil {
			t.Fatal(err)
		}
		m, err := r.send.Send(r.ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, sent{f.name, u, spec, m})
	}
	var ids []string
	for _, s := range all {
		ids = append(ids, s.m.MessageID)
	}
	if err := r.send.WaitAll(r.ctx, ids); err != nil {
		t.Fatal(err)
	}
	r.waitHandled(ids, agent)
	recs := r.auditByID(agent)
	for _, s := range all {
		reps := r.send.Replies(s.m.MessageID)
		if len(reps) != 1 || reps[0].Result.Code != wire.CodeOK || reps[0].Result.Agent != agent.Files.Name {
			var got []string
			for _, rp := range reps {
				got = append(got, rp.Result.Code+" by "+rp.Result.Agent)
			}
			t.Errorf("%s: results %v; want one ok by %s", s.name, got, agent.Files.Name)
		}
		if err := dom.CheckPassword(r.ctx, s.u, s.spec.New); err != nil {
			t.Errorf("%s: the new password does not work, so the reset was not applied: %v", s.name, err)
		}
		lines := recs[s.m.MessageID]
		if len(lines) != 2 || lines[0].Event != writeback.EventStateRefused || lines[0].Code != writeback.CodeStateUnauthenticated ||
			!strings.Contains(lines[0].Detail, s.m.MessageID) ||
			lines[1].Event != audit.EventResult || lines[1].Code != wire.CodeOK || lines[1].Detail != "" || lines[1].Attempts != 1 {
			t.Errorf("%s: audit lines %+v; want the refused state, then one ok result from one write", s.name, lines)
		}
		// The agent's own state replaced the forgery.
		sr, err := r.send.Client().AcceptSessionForQueue(r.ctx, requestQueue, s.spec.Target.SessionID(), nil)
		if err != nil {
			t.Fatal(err)
		}
		st, err := sr.GetSessionState(r.ctx, nil)
		sr.Close(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(string(st), ledger.SealedStateHeader+"\n") || !strings.Contains(string(st), " done "+s.m.MessageID+" ") {
			t.Errorf("%s: session state after the request:\n%s", s.name, st)
		}
	}
}
