package e2e

import (
	"context"
	"encoding/json"
	"net"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// unavailable is a run whose agent reaches the DC through a proxy that
// refuses connections, as a DC whose service died would, with a 2 s retry
// budget.
type unavailable struct {
	*run
	proxy *sambadc.Proxy
	agent *testbed.Agent
	user  *testbed.User
}

func newUnavailable(t *testing.T, sessions bool) *unavailable {
	r := newRun(t, sessions)
	proxy, err := sambadc.NewProxy(r.ctx, net.JoinHostPort(dom.DC.IP(), "636"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	proxy.Refuse()
	agent := r.agent("agent-1", func(c *testbed.AgentConfig) {
		c.Servers = []string{"ldaps://" + proxy.Addr()}
		c.RetryBudget, c.DirectoryTimeout = 2*time.Second, time.Second
	})
	return &unavailable{run: r, proxy: proxy, agent: agent, user: r.user("down")}
}

// sendShortLived sends a reset that expires after lifetime. The broker
// keeps the message longer, so the agent is the one to decide it expired.
func (u *unavailable) sendShortLived(lifetime time.Duration) protocol.Message {
	u.t.Helper()
	spec := u.spec(wire.OpReset, protocol.Target{UserPrincipalName: u.user.UPN}, dom.Secrets.New(), nil)
	spec.ExpiresAt = spec.IssuedAt.Add(lifetime)
	m, err := protocol.BuildRequest(u.keys.Signer, u.keys.Agent, spec)
	if err != nil {
		u.t.Fatal(err)
	}
	m.TimeToLive = time.Minute
	dom.Secrets.Track(spec.New)
	if err := u.send.SendMessage(u.ctx, m); err != nil {
		u.t.Fatal(err)
	}
	return m
}

// waitAbandons waits until the message was abandoned n times.
func (u *unavailable) waitAbandons(id string, n int) {
	u.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		hs, err := u.agent.Handled()
		if err != nil {
			u.t.Fatal(err)
		}
		got := 0
		for _, h := range hs {
			if h.RequestID == id && h.Settle == "abandon" {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			u.t.Fatalf("abandoned %d times within 60s, want %d", got, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDeliveries checks the agent's handling of id: abandons with
// directory_unavailable, each audited, then the expired answer, completed.
func (u *unavailable) checkDeliveries(id string) {
	u.t.Helper()
	handled := u.waitHandled([]string{id}, u.agent)[id]
	recs := u.auditByID(u.agent)[id]
	if len(handled) < 2 || len(recs) != len(handled) {
		u.t.Fatalf("handled %d times with %d audit lines: want abandons, then the expired answer, each audited", len(handled), len(recs))
	}
	last := len(handled) - 1
	for i, h := range handled {
		rec := recs[i]
		switch {
		case i < last && (h.Settle != "abandon" || h.Code != wire.CodeDirectoryUnavailable ||
			rec.Event != audit.EventAbandoned || rec.Code != wire.CodeDirectoryUnavailable):
			u.t.Errorf("delivery %d: settled %s/%s, audited %s/%s; want abandon, directory_unavailable", i+1, h.Settle, h.Code, rec.Event, rec.Code)
		case i == last && (h.Settle != "complete" || h.Code != wire.CodeExpired || rec.Event != audit.EventResult || rec.Code != wire.CodeExpired):
			u.t.Errorf("last delivery: settled %s/%s, audited %s/%s; want complete, expired", h.Settle, h.Code, rec.Event, rec.Code)
		}
	}
	if recs[0].Attempts < 1 {
		u.t.Errorf("the first delivery made %d directory attempts", recs[0].Attempts)
	}
	if n := len(u.send.Replies(id)); n != 1 {
		u.t.Errorf("%d results, want 1", n)
	}
	if err := dom.CheckPassword(u.ctx, u.user, u.user.Password); err != nil {
		u.t.Fatalf("the password changed although the request was never applied: %v", err)
	}
	u.t.Logf("abandoned %d times, then answered expired", last)
}

// directory_unavailable: while no DC answers, a request is retried within
// the retry budget, then its message is abandoned for redelivery (audited
// as abandoned, directory_unavailable) as long as the request lives. Once
// it has expired and the DC answers again, it is answered `expired`, never
// written; the next request is written.
func TestDirectoryUnavailable(t *testing.T) {
	testkit.ForQueueKinds(t, func(t *testing.T, sessions bool) {
		u := newUnavailable(t, sessions)
		m := u.sendShortLived(5 * time.Second)
		u.waitAbandons(m.MessageID, 1)
		// Let the request expire while the DC is still down.
		time.Sleep(time.Until(expiresAt(t, m)) + 500*time.Millisecond)
		u.proxy.Resume()
		ctx, cancel := context.WithTimeout(u.ctx, 60*time.Second)
		defer cancel()
		res, err := u.send.Wait(ctx, m.MessageID)
		if err != nil {
			t.Fatal(err)
		}
		if res.Code != wire.CodeExpired || !res.Retryable {
			t.Fatalf("result %+v, want expired (retryable)", res)
		}
		u.checkDeliveries(m.MessageID)
		pw := dom.Secrets.New()
		ok := u.sendAll(u.spec(wire.OpReset, protocol.Target{UserPrincipalName: u.user.UPN}, pw, nil))[0]
		if res, err := u.send.Wait(ctx, ok.MessageID); err != nil || res.Code != wire.CodeOK {
			t.Fatalf("after the DC came back: %+v %v", res, err)
		}
		if err := dom.CheckPassword(u.ctx, u.user, pw); err != nil {
			t.Fatal(err)
		}
	})
}

// expiresAt reads a request message's expiresAt.
func expiresAt(t *testing.T, m protocol.Message) time.Time {
	t.Helper()
	var b struct {
		ExpiresAt time.Time `json:"expiresAt"`
	}
	if err := json.Unmarshal(m.Body, &b); err != nil {
		t.Fatal(err)
	}
	return b.ExpiresAt
}

// Protocol v1 §6: a message abandoned for directory_unavailable is
// answered `expired` once the request no longer lives, even while the DC
// stays down. Attempts that failed to connect wrote nothing, so the agent
// keeps no applying record that a redelivery would have to disprove from
// pwdLastSet (which the dead DC could not answer).
func TestExpiredWhileDirectoryDown(t *testing.T) {
	u := newUnavailable(t, false)
	m := u.sendShortLived(5 * time.Second)
	ctx, cancel := context.WithTimeout(u.ctx, 40*time.Second)
	defer cancel()
	if _, err := u.send.Wait(ctx, m.MessageID); err != nil {
		dead, _ := u.send.DeadLetters(u.ctx, time.Second)
		for _, d := range dead {
			t.Logf("dead-lettered by the broker: %s: %s", d.Reason, d.Description)
		}
		t.Fatalf("no answer while the DC stays down: %v", err)
	}
	u.checkDeliveries(m.MessageID)
}
