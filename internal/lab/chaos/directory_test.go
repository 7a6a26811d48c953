package chaos

import (
	"strings"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// sequences sends per requests for each account, alternating reset and
// change (a change's old password is the one the request before set), in
// rounds, so that every session has several requests in flight.
func (w *world) sequences(accts []*account, per int) []*request {
	var rs []*request
	for i := range per {
		op := wire.OpReset
		if i%2 == 1 {
			op = wire.OpChange
		}
		for _, a := range accts {
			rs = append(rs, w.send(a, op, nil))
		}
	}
	return rs
}

// dcProxy is a proxy in front of the DC's LDAPS port.
type dcProxy struct{ *sambadc.Proxy }

// serves points an agent at the proxy instead of the DC.
func (p dcProxy) serves(c *testbed.AgentConfig) { c.Servers = []string{"ldaps://" + p.Addr()} }

// dcProxy starts a proxy to the DC, closed when the test ends.
func (w *world) dcProxy() dcProxy {
	w.t.Helper()
	p, err := sambadc.NewProxy(w.ctx, strings.TrimPrefix(w.sh.dom.DC.LDAPSURL(), "ldaps://"))
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = p.Close() })
	return dcProxy{p}
}

// allOK fails the test unless every request was answered ok.
func allOK(t *testing.T, s summary) {
	t.Helper()
	if s.codes[wire.CodeOK] != s.requests {
		t.Errorf("want every request answered ok, got %v of %d", s.codes, s.requests)
	}
}

// The DC dies (SIGKILL) while a batch is being written and comes back a
// moment later: writes whose answer was lost are decided from pwdLastSet,
// the rest are retried or redelivered; every request is applied once.
func TestDCKilledMidBatch(t *testing.T) {
	w := newWorld(t, worldOptions{Sessions: true})
	a := w.startAgent("agent-1")
	rs := w.sequences(w.accounts(pick(4, 8)), pick(3, 10))
	w.waitResults(len(rs)/3, time.Minute)
	w.sh.dom.DC.Kill()
	time.Sleep(pick(time.Second, 5*time.Second))
	if err := w.sh.dom.DC.Restart(w.ctx); err != nil {
		t.Fatal(err)
	}
	w.waitAnswered(rs, 2*time.Minute)
	allOK(t, w.checkInvariants())
	if !logged(t, a, "directory failed") {
		t.Error("no directory write failed while the DC was down: the fault did not bite")
	}
}

// The DC answers, but every answer takes longer than the queue's lock
// duration: the agent must renew the message locks, so that no request
// is delivered (and written) a second time.
func TestDCSlowerThanLockDuration(t *testing.T) {
	const lock = 2 * time.Second
	w := newWorld(t, worldOptions{Queue: devbus.QueueConfig{LockDuration: lock}})
	p := w.dcProxy()
	a := w.startAgent("agent-1", p.serves, func(c *testbed.AgentConfig) { c.DirectoryTimeout = 20 * time.Second })
	accts := w.accounts(pick(3, 8))
	// One request first, at full speed, so the agent's connections exist.
	warm := w.send(accts[0], wire.OpReset, nil)
	w.waitAnswered([]*request{warm}, time.Minute)
	p.SetDelay(lock / 2)
	rs := w.resetAll(accts)
	w.waitAnswered(rs, 2*time.Minute)
	p.SetDelay(0)
	s := w.checkInvariants()
	allOK(t, s)
	hs, err := a.Handled()
	if err != nil {
		t.Fatal(err)
	}
	slow := 0
	for _, r := range rs {
		n := 0
		for _, h := range hs {
			if h.RequestID == r.id {
				n++
			}
		}
		if n != 1 {
			t.Errorf("request %s handled %d times: a lock ran out", r.id, n)
		}
	}
	recs, err := a.Audit()
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if time.Duration(rec.DurationMs)*time.Millisecond > lock {
			slow++
		}
	}
	if slow < len(rs) {
		t.Errorf("only %d of %d writes outlasted the %s lock: the fault did not bite", slow, len(rs), lock)
	}
}

// No DC answers for longer than the retry budget: deliveries give up
// (directory_unavailable) and are redelivered until the DC is back;
// requests that expire meanwhile are never applied.
func TestDCUnreachablePastRetryBudget(t *testing.T) {
	const budget = 2 * time.Second
	w := newWorld(t, worldOptions{Queue: devbus.QueueConfig{MaxDeliveryCount: 100}})
	p := w.dcProxy()
	a := w.startAgent("agent-1", p.serves, func(c *testbed.AgentConfig) {
		c.RetryBudget = budget
		c.DirectoryTimeout = 2 * time.Second
	})
	accts := w.accounts(pick(4, 10))
	warm := w.send(accts[0], wire.OpReset, nil)
	w.waitAnswered([]*request{warm}, time.Minute)
	p.Refuse()
	p.Cut()
	outage := pick(4*budget, 10*budget)
	var live, dying []*request
	for i, acct := range accts[1:] {
		if i%2 == 0 {
			live = append(live, w.send(acct, wire.OpReset, nil))
			continue
		}
		// Expires while the DC is away.
		r := w.send(acct, wire.OpReset, func(s *protocol.RequestSpec) { s.ExpiresAt = s.IssuedAt.Add(outage / 2) })
		r.mayGoUnanswered = true
		dying = append(dying, r)
	}
	time.Sleep(outage / 2)
	if code := ready(w.ctx, a); code == 200 {
		t.Errorf("/readyz answered %d while no DC answers", code)
	}
	if got := len(w.sender.AllReplies()); got != 1 {
		t.Errorf("%d requests answered while no DC answers; only the warm-up should be", got)
	}
	time.Sleep(outage / 2)
	p.Resume()
	w.waitAnswered(live, 2*time.Minute)
	if err := a.WaitReady(w.ctx); err != nil {
		t.Error(err)
	}
	// The dying ones: answered expired, or dropped by the broker at their
	// time to live; never applied (checked with the rest).
	time.Sleep(2 * time.Second)
	s := w.checkInvariants()
	if s.codes[wire.CodeOK] != len(live)+1 {
		t.Errorf("want the %d live requests and the warm-up ok, got %v", len(live), s.codes)
	}
	for _, r := range dying {
		for _, rep := range w.sender.Replies(r.id) {
			if rep.Result.Code != wire.CodeExpired {
				t.Errorf("request %s expired during the outage but was answered %s", r.id, rep.Result.Code)
			}
		}
	}
	if p.Refused() == 0 {
		t.Error("the agent never tried the DC during the outage")
	}
}

// Sender and agent clocks disagree: a request issued exactly maxClockSkew
// ahead of the agent's clock is taken; one beyond it is refused as
// invalid (result and dead letter); one from a sender whose clock is
// behind is taken while it lives and answered expired after.
func TestClockSkew(t *testing.T) {
	const skew = 30 * time.Second
	w := newWorld(t, worldOptions{})
	w.startAgent("agent-1", func(c *testbed.AgentConfig) { c.MaxClockSkew = skew })
	accts := w.accounts(4)
	at := func(issued, life time.Duration) func(*protocol.RequestSpec) {
		return func(s *protocol.RequestSpec) {
			now := time.Now()
			s.IssuedAt, s.ExpiresAt = now.Add(issued), now.Add(issued+life)
		}
	}
	atSkew := w.send(accts[0], wire.OpReset, at(skew, 5*time.Minute))
	beyond := w.send(accts[1], wire.OpReset, at(skew+5*time.Second, 5*time.Minute))
	behindAlive := w.send(accts[2], wire.OpReset, at(-4*time.Minute, 5*time.Minute))
	behindExpired := w.send(accts[3], wire.OpReset, at(-10*time.Minute, 9*time.Minute))
	w.waitAnswered([]*request{atSkew, beyond, behindAlive, behindExpired}, time.Minute)
	s := w.checkInvariants(wire.CodeInvalidRequest)
	want := map[*request]string{atSkew: wire.CodeOK, beyond: wire.CodeInvalidRequest,
		behindAlive: wire.CodeOK, behindExpired: wire.CodeExpired}
	for r, code := range want {
		if got := w.sender.Replies(r.id)[0].Result.Code; got != code {
			t.Errorf("request %s: answered %s, want %s", r.id, got, code)
		}
	}
	if len(s.deadLettered) != 1 || s.deadLettered[0].MessageID != beyond.id || s.deadLettered[0].DeadLetterReason != wire.CodeInvalidRequest {
		t.Errorf("dead letters %+v: want only %s, invalid_request", s.deadLettered, beyond.id)
	}
}
