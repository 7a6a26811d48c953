package e2e

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"wbagent/internal/lab/testbed"
)

// An agent on an idle session queue is ready as soon as the DC and the bus
// answer: waiting for the next session gives no answer while no session
// is waiting, so the consumer proves the bus with a probe session of its
// own instead of looking "not connected" for its whole accept wait.
func TestReadyOnIdleSessionQueue(t *testing.T) {
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
