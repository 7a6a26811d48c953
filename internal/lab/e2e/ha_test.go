package e2e

import (
	"context"
	"sort"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Two agents compete for one session queue: 200 resets over 50 users, four
// per user, sent interleaved. Every request is answered exactly once, each
// user's requests are applied in the order they were sent, both agents
// take part, and every account ends with the password its last request
// set.
func TestTwoAgentsOneSessionQueue(t *testing.T) {
	const users, perUser = 50, 4
	r := newRun(t, true)
	accounts, err := dom.AddUsers(r.ctx, dom.UniqueName("ha"), dom.Staff, users)
	if err != nil {
		t.Fatal(err)
	}
	agents := []*testbed.Agent{r.agent("agent-a", nil), r.agent("agent-b", nil)}
	pws := make([][]*secret.Secret, users)
	ids := make([][]string, users)
	var all []string
	for k := 0; k < perUser; k++ {
		for i, u := range accounts {
			pw := dom.Secrets.New()
			m := r.sendAll(r.spec(wire.OpReset, protocol.Target{UserPrincipalName: u.UPN}, pw, nil))[0]
			pws[i] = append(pws[i], pw)
			ids[i] = append(ids[i], m.MessageID)
			all = append(all, m.MessageID)
		}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Minute)
	defer cancel()
	if err := r.send.WaitAll(ctx, all); err != nil {
		t.Fatal(err)
	}
	handled := r.waitHandled(all, agents...)
	recs := r.auditByID(agents...)
	for _, id := range all {
		if n := len(r.send.Replies(id)); n != 1 {
			t.Errorf("request %s: %d results, want exactly 1", id, n)
		}
		if res := r.send.Replies(id)[0].Result; res.Code != wire.CodeOK {
			t.Errorf("request %s: %s", id, res.Code)
		}
		if len(handled[id]) != 1 || len(recs[id]) != 1 || recs[id][0].Event != audit.EventResult {
			t.Errorf("request %s: handled %d times, %d audit lines", id, len(handled[id]), len(recs[id]))
		}
	}
	// Per-user order: the audit lines (fsynced before each completion, the
	// next request of the session only delivered after it) are in send
	// order, whichever agent wrote them.
	for i, u := range accounts {
		type step struct {
			at time.Time
			k  int
		}
		var steps []step
		for k, id := range ids[i] {
			if len(recs[id]) == 1 {
				steps = append(steps, step{recs[id][0].Time, k})
			}
		}
		sort.SliceStable(steps, func(a, b int) bool { return steps[a].at.Before(steps[b].at) })
		for j, s := range steps {
			if s.k != j {
				t.Errorf("%s: requests applied in order %v, want send order", u.SAMAccountName, steps)
				break
			}
		}
		if err := dom.CheckPassword(r.ctx, u, pws[i][perUser-1]); err != nil {
			t.Errorf("%s does not have the password of its last request: %v", u.SAMAccountName, err)
		}
	}
	for _, a := range agents {
		hs, err := a.Handled()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s handled %d requests", a.Files.Name, len(hs))
		if len(hs) == 0 {
			t.Errorf("%s handled nothing: the two agents did not share the queue", a.Files.Name)
		}
	}
}
