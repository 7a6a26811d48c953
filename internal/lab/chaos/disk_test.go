package chaos

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
)

// tinyDisk mounts a tmpfs of size bytes at a new folder and unmounts it
// when the test ends. Mounting needs root: without it the test is skipped.
func tinyDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the full-disk scenario mounts a tmpfs, which needs root")
	}
	dir := filepath.Join(t.TempDir(), "tiny")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "wbchaos", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a tmpfs at %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file until the disk refuses more, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			return path
		}
	}
}

// maxDeliveries is the request queue's maximum delivery count in the
// full-disk scenarios: low, so that an agent that kept taking messages it
// cannot record would have them dead-lettered while the disk is full.
const maxDeliveries = 4

// fullDiskAgent starts a full-disk scenario's world, whose queue has a
// low maximum delivery count, and its one agent, after move has put some
// of the agent's files on the small disk.
func fullDiskAgent(t *testing.T, move func(*testbed.AgentFiles)) (*world, *testbed.Agent) {
	t.Helper()
	w := newWorld(t, worldOptions{Queue: devbus.QueueConfig{MaxDeliveryCount: maxDeliveries}})
	files := w.writeAgent("agent-1", func(c *testbed.AgentConfig) { c.RetryBudget = time.Second })
	move(files)
	return w, w.runAgent(files)
}

// The audit file lives on a disk that fills up: the agent must not
// complete (nor answer) any message whose audit line it could not write,
// must stop taking messages (so none reaches the queue's maximum delivery
// count and is dead-lettered), must say so in its log and on /readyz, and
// must carry on by itself once space is back. The directory write may
// already have happened; the redelivery then answers from the ledger
// without a second write.
func TestAuditOnFullDisk(t *testing.T) {
	disk := tinyDisk(t, "256k")
	w, a := fullDiskAgent(t, func(f *testbed.AgentFiles) { moveAudit(t, f, filepath.Join(disk, "audit.jsonl")) })
	accts := w.accounts(pick(3, 10))
	// Filled before the first line: a file with lines has room left in
	// its last page, and tmpfs would take a few more without a new one.
	filler := fill(t, disk)
	rs := w.resetAll(accts)
	if waiting := whileFull(t, w, a, rs, "audit"); len(waiting) != len(rs) {
		t.Errorf("%d of %d requests answered while their audit lines cannot be written", len(rs)-len(waiting), len(rs))
	}
	recs, err := a.Audit()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 0 {
		t.Errorf("%d audit records written while the disk is full", len(recs))
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	afterSpaceReturns(t, w, a, rs)
	recs, err = testbed.ReadAudit(a.Files.Audit)
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]int{}
	for _, r := range recs {
		events[r.Event]++
	}
	t.Logf("audit events after recovery: %v", events)
	if err := w.sh.dom.Secrets.ScanError(disk); err != nil {
		t.Error(err)
	}
}

// The state folder (the ledger) lives on a disk that fills up. The ledger
// file has room inside it when the disk fills, so the first requests are
// still recorded and answered; once a write needs a new page the agent
// stops taking messages, as for the audit disk, and resumes by itself
// when space returns. No request is applied without its applying record,
// so every request is answered exactly once.
func TestStateOnFullDisk(t *testing.T) {
	disk := tinyDisk(t, "1m")
	w, a := fullDiskAgent(t, func(f *testbed.AgentFiles) { moveState(t, f, filepath.Join(disk, "state")) })
	accts := w.accounts(pick(40, 80))
	filler := fill(t, disk)
	rs := w.resetAll(accts)
	deadline := time.Now().Add(2 * time.Minute)
	for !logged(t, a, "taking no messages") {
		if time.Now().After(deadline) {
			t.Fatalf("the agent never stopped taking messages with its state disk full (%d of %d answered)", answered(w, rs), len(rs))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if answered(w, rs) == len(rs) {
		t.Fatal("every request was answered: the ledger never ran out of space")
	}
	waiting := whileFull(t, w, a, rs, "state")
	n := len(rs) - len(waiting)
	for _, r := range waiting {
		if v, err := pwdVersion(w.ctx, w.sh.dom, r.acct.user.DN); err != nil || v != r.acct.v0 {
			t.Errorf("%s written although its request was not answered (version %d, was %d): %v", r.acct.user.SAMAccountName, v, r.acct.v0, err)
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	afterSpaceReturns(t, w, a, rs)
	t.Logf("%d of %d requests answered before the state disk ran out, the rest after space returned", n, len(rs))
}

// answered counts the requests of rs that have a result.
func answered(w *world, rs []*request) int {
	n := 0
	for _, r := range rs {
		if len(w.sender.Replies(r.id)) > 0 {
			n++
		}
	}
	return n
}

// whileFull checks the agent while a disk is full: once the deliveries it
// had taken are done it takes no message (every request not answered is
// still queued, none delivered more than twice), says so in its log, its
// metrics and on /readyz (whose failing check is check). It returns the
// requests not answered.
func whileFull(t *testing.T, w *world, a *testbed.Agent, rs []*request, check string) []*request {
	t.Helper()
	// Long enough for each message to be delivered maxDeliveries times
	// over if the agent kept taking them: each delivery gives up after
	// the one-second retry budget.
	time.Sleep(pick(3*maxDeliveries*time.Second, 8*maxDeliveries*time.Second))
	code, body := readyBody(w.ctx, a)
	if code == 200 || !strings.Contains(body, `"`+check+`"`) {
		t.Errorf("/readyz answered %d while the %s disk is full: %s", code, check, body)
	}
	var waiting []*request
	for _, r := range rs {
		if len(w.sender.Replies(r.id)) == 0 {
			waiting = append(waiting, r)
		}
	}
	msgs, err := w.srv.Messages(queueName)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(waiting) {
		t.Errorf("%d messages in the queue while the %s disk is full, want the %d not answered", len(msgs), check, len(waiting))
	}
	for _, m := range msgs {
		if m.DeliveryCount > 2 {
			t.Errorf("message %s delivered %d times while the %s disk is full: the agent kept taking messages it could not record", m.MessageID, m.DeliveryCount, check)
		}
	}
	if dead, err := w.srv.DeadLetters(queueName); err != nil || len(dead) != 0 {
		t.Errorf("%d messages dead-lettered while the %s disk is full (%v)", len(dead), check, err)
	}
	if !logged(t, a, "taking no messages") {
		t.Error("the agent did not log that it stopped taking messages")
	}
	if m := metric(w.ctx, a, "wbagent_intake_paused"); m != "1" {
		t.Errorf("wbagent_intake_paused = %q while the %s disk is full, want 1", m, check)
	}
	// Still paused: nothing more is taken.
	time.Sleep(pick(2*time.Second, 5*time.Second))
	if n := answered(w, rs); n != len(rs)-len(waiting) {
		t.Errorf("%d requests answered while intake is paused, %d before", n, len(rs)-len(waiting))
	}
	return waiting
}

// afterSpaceReturns checks that the agent resumes by itself: every request
// is answered once, it is ready again and says so.
func afterSpaceReturns(t *testing.T, w *world, a *testbed.Agent, rs []*request) {
	t.Helper()
	w.waitAnswered(rs, 2*time.Minute)
	if err := a.WaitReady(w.ctx); err != nil {
		t.Errorf("not ready after space came back: %v", err)
	}
	if m := metric(w.ctx, a, "wbagent_intake_paused"); m != "0" {
		t.Errorf("wbagent_intake_paused = %q after space came back, want 0", m)
	}
	if !logged(t, a, "taking messages again") {
		t.Error("the agent did not log that it takes messages again")
	}
	s := w.checkInvariants()
	allOK(t, s)
	if len(s.deadLettered) != 0 {
		t.Errorf("%d messages dead-lettered", len(s.deadLettered))
	}
}

// readyBody returns /readyz's status and body, asked from loopback (which
// is shown why checks fail).
func readyBody(ctx context.Context, a *testbed.Agent) (int, string) {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+a.Files.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric returns the value of an unlabelled metric on /metrics, or "".
func metric(ctx context.Context, a *testbed.Agent, name string) string {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+a.Files.HTTPAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

// moveState points the agent's config at another state folder.
func moveState(t *testing.T, f *testbed.AgentFiles, dir string) {
	t.Helper()
	if err := f.ReplaceInConfig("stateDir: "+testbed.Quote(f.StateDir), "stateDir: "+testbed.Quote(dir)); err != nil {
		t.Fatal(err)
	}
	f.StateDir = dir
}

// moveAudit points the agent's config at another audit file (the
// harness writes it next to the config).
func moveAudit(t *testing.T, f *testbed.AgentFiles, path string) {
	t.Helper()
	if err := f.ReplaceInConfig("file: "+testbed.Quote(f.Audit), "file: "+testbed.Quote(path)); err != nil {
		t.Fatal(err)
	}
	f.Audit = path
}
