package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"wbagent/internal/testbed"
)

// A known defect, kept out of the default run (set WBAGENT_E2E_KNOWN_BUGS=1
// to run it): on a session queue with no messages, /readyz reports
// "service bus: not connected yet" for the bus consumer's whole accept
// timeout (30 s) after start, although the DC and the bus both answer. The
// consumer learns the bus is reachable only when an accept returns or
// times out; an idle session queue gives neither for 30 s, so a
// orchestrator's readiness probe sees a healthy agent as not ready.
func TestKnownBugReadyOnIdleSessionQueue(t *testing.T) {
	if os.Getenv("WBAGENT_E2E_KNOWN_BUGS") == "" {
		t.Skip("known defect in bus readiness on idle session queues; set WBAGENT_E2E_KNOWN_BUGS=1 to run")
	}
	r := newRun(t, true)
	a := r.agent("agent-1", func(c *testbed.AgentConfig) { c.HTTP = true })
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	if err := a.WaitReady(ctx); err != nil {
		body := ""
		if resp, herr := http.Get("http://" + a.Files.HTTPAddr + "/readyz"); herr == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		t.Fatalf("%v; /readyz says %s", err, body)
	}
}
