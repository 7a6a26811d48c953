package chaos

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/bench"
	"wbagent/internal/wire"
)

// repeat runs f at once and then every period in the background until the returned stop
// is called; stop returns how many times f ran.
func repeat(period time.Duration, f func()) (stop func() int) {
	var n atomic.Int32
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		f()
		n.Add(1)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
				n.Add(1)
			}
		}
	}()
	return func() int {
		close(done)
		wg.Wait()
		return int(n.Load())
	}
}

// devbus cuts every socket (the agent's and the sender's) every few
// seconds while a thousand requests (short form: sixty) go through.
func TestBusDropsAllConnections(t *testing.T) {
	w := newWorld(t, worldOptions{Sessions: true, Queue: devbus.QueueConfig{DuplicateDetection: 10 * time.Minute, LockDuration: 5 * time.Second}})
	w.startAgent("agent-1")
	accts := w.accounts(pick(6, 50))
	total := pick(30, 1000)
	stop := repeat(pick(2*time.Second, 3*time.Second), func() { w.srv.DropAllConnections() })
	rs := w.sequences(accts, total/len(accts))
	w.waitAnswered(rs, pick(2*time.Minute, 10*time.Minute))
	drops := stop()
	if drops == 0 {
		t.Error("no connection was dropped: the fault did not bite")
	}
	t.Logf("all connections dropped %d times", drops)
	allOK(t, w.checkInvariants())
}

// devbus forces the agent's links off mid-batch, once with
// amqp:link:detach-forced and once with com.microsoft:server-busy (the two
// conditions Service Bus uses to push clients off a link), on a plain and
// on a session queue: the agent must recover and answer everything.
//
// After a server-busy detach the SDK (azservicebus v1.11.0) keeps the
// plain receiver open but answers every receive at once with nothing; the
// agent must notice, receive on a new link, and not spin.
func TestLinksForceDetached(t *testing.T) {
	for _, cond := range []string{devbus.CondDetachForced, devbus.CondServerBusy} {
		for _, sessions := range []bool{false, true} {
			name := strings.TrimPrefix(strings.TrimPrefix(cond, "amqp:link:"), "com.microsoft:") + "/plain"
			if sessions {
				name = strings.Replace(name, "plain", "sessions", 1)
			}
			t.Run(name, func(t *testing.T) { linkDetached(t, cond, sessions) })
		}
	}
}

func linkDetached(t *testing.T, cond string, sessions bool) {
	w := newWorld(t, worldOptions{Sessions: sessions, Queue: devbus.QueueConfig{LockDuration: 5 * time.Second}})
	a := w.startAgent("agent-1")
	pid, err := bench.FindProcess(w.sh.bin, "run", "--config", a.Files.Config)
	if err != nil {
		t.Fatal(err)
	}
	// A plain queue keeps no order: one request per account there.
	accts, per := pick(3, 8), pick(3, 10)
	if !sessions {
		accts, per = accts*per, 1
	}
	rs := w.sequences(w.accounts(accts), per)
	w.waitResults(1, time.Minute)
	n, err := w.srv.DetachLinks(queueName, cond, true)
	if err != nil || n == 0 {
		t.Fatalf("detached %d links: %v", n, err)
	}
	before, _ := bench.ReadProc(pid)
	start := time.Now()
	ctx, cancel := context.WithTimeout(w.ctx, pick(20*time.Second, time.Minute))
	defer cancel()
	if err := w.sender.WaitAll(ctx, ids(rs)); err != nil {
		after, _ := bench.ReadProc(pid)
		t.Fatalf("after %d links were detached with %s the agent stopped: %d of %d requests answered in %s, "+
			"the agent used %s of CPU meanwhile, /readyz %d (queue: %s)", n, cond, len(w.sender.AllReplies()), len(rs),
			time.Since(start).Round(time.Second), (after.CPU - before.CPU).Round(10*time.Millisecond), ready(w.ctx, a), w.queueState())
	}
	allOK(t, w.checkInvariants())
}

// The bus refuses one CBS token (401) when the agent reconnects: the
// agent must recover and answer everything.
func TestCBSRefusedOnce(t *testing.T) {
	w := newWorld(t, worldOptions{Sessions: true})
	// The sender's connection exists before the agent's, so the agent's
	// are the ones that come after.
	for len(w.srv.Connections()) == 0 {
		if w.ctx.Err() != nil {
			t.Fatal("the sender never connected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	senders := map[uint64]bool{}
	for _, c := range w.srv.Connections() {
		senders[c.ID] = true
	}
	a := w.startAgent("agent-1")
	accts := w.accounts(pick(3, 6))
	warm := w.send(accts[0], wire.OpReset, nil)
	w.waitAnswered([]*request{warm}, time.Minute)
	w.srv.FailCBS(1, 401)
	dropped := 0
	for _, c := range w.srv.Connections() {
		if !senders[c.ID] && w.srv.DropConnection(c.ID) {
			dropped++
		}
	}
	if dropped == 0 {
		t.Fatal("the agent has no connection to drop")
	}
	rs := w.sequences(accts, pick(2, 5))
	w.waitAnswered(rs, 2*time.Minute)
	if err := a.WaitReady(w.ctx); err != nil {
		t.Error(err)
	}
	if !a.Running() {
		t.Error("the agent exited after a refused token")
	}
	allOK(t, w.checkInvariants())
	// The agent logs broker errors as sentences ("the broker answered
	// status 401 ..."); the SDK's own text says "status code 401".
	if !logged(t, a, "status 401", "status code 401") {
		t.Error("the agent never met the refused token: the fault did not bite")
	}
}
