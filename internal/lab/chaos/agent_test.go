package chaos

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"wbagent/internal/devbus"
)

// The agent is killed with SIGKILL at random moments, five times in one
// run, and started again each time: whatever it was doing (decrypting,
// writing, recording, replying, settling), no request is lost and none is
// applied twice.
func TestAgentKilledFiveTimes(t *testing.T) {
	w := newWorld(t, worldOptions{Sessions: true, Queue: devbus.QueueConfig{LockDuration: 2 * time.Second}})
	a := w.startAgent("agent-1")
	rs := w.sequences(w.accounts(pick(6, 10)), pick(6, 20))
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	const kills = 5
	for i := range kills {
		// Each kill waits for the agent to get through a share of the
		// work, then strikes at a random moment of the next writes.
		w.waitResults((i+1)*len(rs)/(kills+2), 2*time.Minute)
		time.Sleep(time.Duration(rng.IntN(60)) * time.Millisecond)
		a.Kill()
		t.Logf("kill %d after %d results", i+1, len(w.sender.AllReplies()))
		w.restart(a)
	}
	w.waitAnswered(rs, pick(2*time.Minute, 5*time.Minute))
	allOK(t, w.checkInvariants())
}

// Two, then three, agents share a session queue and one of them is killed
// mid-batch and never comes back: the others take over its sessions once
// their locks expire, decide the writes it may have made from the session
// state and pwdLastSet, and answer everything.
func TestAgentsOneKilled(t *testing.T) {
	for _, n := range []int{2, 3} {
		t.Run(fmt.Sprintf("%d agents", n), func(t *testing.T) {
			w := newWorld(t, worldOptions{Sessions: true, Queue: devbus.QueueConfig{LockDuration: 3 * time.Second}})
			for i := range n {
				w.startAgent(fmt.Sprintf("agent-%d", i+1))
			}
			rs := w.sequences(w.accounts(pick(6, 12)), pick(3, 8))
			w.waitResults(len(rs)/3, time.Minute)
			victim := w.agents[0]
			victim.Kill()
			w.waitAnswered(rs, pick(2*time.Minute, 5*time.Minute))
			for _, a := range w.agents[1:] {
				if !a.Running() {
					t.Errorf("%s exited", a.Files.Name)
				}
			}
			allOK(t, w.checkInvariants())
			hs, err := victim.Handled()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s handled %d messages before it was killed", victim.Files.Name, len(hs))
		})
	}
}
