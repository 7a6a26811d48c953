package chaos

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/wire"
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

// The audit file lives on a disk that fills up: the agent must not
// complete (nor answer) any message whose audit line it could not write,
// must say so on /readyz, and must carry on once space is back. The
// directory write may already have happened; the redelivery then answers
// from the ledger without a second write.
func TestAuditOnFullDisk(t *testing.T) {
	disk := tinyDisk(t, "256k")
	w := newWorld(t, worldOptions{Queue: devbus.QueueConfig{MaxDeliveryCount: 1000}})
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: filepath.Join(w.dir, "agent-1"), Name: "agent-1",
		Queue: queueName, Keys: w.sh.keys, HTTP: true, RetryBudget: time.Second}, w.sh.dom)
	if err != nil {
		t.Fatal(err)
	}
	moveAudit(t, files, filepath.Join(disk, "audit.jsonl"))
	a := w.runAgent(files)
	accts := w.accounts(pick(3, 10))
	// Filled before the first line: a file with lines has room left in
	// its last page, and tmpfs would take a few more without a new one.
	filler := fill(t, disk)
	var rs []*request
	for _, acct := range accts {
		rs = append(rs, w.send(acct, wire.OpReset, nil))
	}
	time.Sleep(pick(3*time.Second, 10*time.Second))
	if code := ready(w.ctx, a); code == 200 {
		t.Errorf("/readyz answered 200 while the audit disk is full")
	}
	for _, r := range rs {
		if reps := w.sender.Replies(r.id); len(reps) > 0 {
			t.Errorf("request %s answered %s while its audit line cannot be written", r.id, reps[0].Result.Code)
		}
	}
	msgs, err := w.srv.Messages(queueName)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != len(rs) {
		t.Errorf("%d messages in the queue while the audit disk is full, want all %d", len(msgs), len(rs))
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
	w.waitAnswered(rs, 2*time.Minute)
	if err := a.WaitReady(w.ctx); err != nil {
		t.Errorf("not ready after space came back: %v", err)
	}
	s := w.checkInvariants()
	allOK(t, s)
	recs, err = testbed.ReadAudit(files.Audit)
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

// moveAudit points the agent's config at another audit file (the
// harness writes it next to the config).
func moveAudit(t *testing.T, f *testbed.AgentFiles, path string) {
	t.Helper()
	b, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	quote := func(s string) string { q, _ := json.Marshal(s); return string(q) }
	old := "file: " + quote(f.Audit)
	if !strings.Contains(string(b), old) {
		t.Fatalf("config %s has no %s", f.Config, old)
	}
	b = []byte(strings.Replace(string(b), old, "file: "+quote(path), 1))
	if err := os.WriteFile(f.Config, b, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Audit = path
}
