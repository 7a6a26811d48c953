package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

func TestScanFindsEveryEncoding(t *testing.T) {
	r := NewSecrets()
	pw := r.New()
	r.TrackString("Pässwörd-<✓>")
	dir := t.TempDir()
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("clean.log", []byte("nothing to see"))
	write("plain.log", []byte("x "+pw.Reveal()+" y"))
	write("json.log", []byte(`{"m":"P\u00e4ssw\u00f6rd-\u003c\u2713\u003e"}`))
	u := []byte{}
	for _, c := range pw.Reveal() {
		u = append(u, byte(c), 0)
	}
	write("utf16.bin", u)
	leaks, err := r.Scan(dir, filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range leaks {
		got[filepath.Base(l.Where)] = l.Encoding
	}
	if len(got) != 3 || got["plain.log"] != "utf-8" || got["utf16.bin"] != "utf-16le" || got["json.log"] != "json" {
		t.Fatalf("leaks %v", leaks)
	}
	if r.ScanError(filepath.Join(dir, "clean.log")) != nil {
		t.Fatal("a clean file reported")
	}
	if err := r.ScanError(dir); err == nil || strings.Contains(err.Error(), pw.Reveal()) {
		t.Fatalf("ScanError = %v: want an error that does not repeat the password", err)
	}
}

func TestQueueFlag(t *testing.T) {
	got := QueueFlag(devbus.QueueConfig{Name: "q", RequiresSession: true, LockDuration: 5 * time.Second, MaxDeliveryCount: 3})
	if got != "q,sessions,lock=5s,maxdelivery=3" {
		t.Fatal(got)
	}
}

// The whole bed: a DC, keys, an in-process devbus, an agent process, a
// reset through the SDK and one through `wbagent send`, the new passwords
// checked by binding, and no password in any file written.
func TestBed(t *testing.T) {
	ctx, dir, bin := agentBed(t, "needs Samba AD DC", 3*time.Minute)
	dom := StartDomainTest(ctx, t, DomainOptions{})
	if err := dom.CheckPassword(ctx, dom.Sample.Locked, dom.Sample.Locked.Password); BindCode(err) != "775" {
		t.Fatalf("locked sample: %v", err)
	}
	if err := dom.CheckPassword(ctx, dom.Sample.NoUPN, dom.Sample.NoUPN.Password); err != nil {
		t.Fatalf("sample without UPN: %v", err)
	}
	keys, err := NewKeys(filepath.Join(dir, "keys"))
	if err != nil {
		t.Fatal(err)
	}
	bus, err := StartBus(ctx, BusOptions{Queues: []devbus.QueueConfig{{Name: "requests", RequiresSession: true}, {Name: "replies"},
		{Name: "replies-s", RequiresSession: true}}})
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	files, err := WriteAgentConfig(AgentConfig{Dir: filepath.Join(dir, "agent"), Queue: "requests", Sessions: true, HTTP: true, Keys: keys}, dom)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := StartAgent(bin, files, AgentEnv(bus, dom))
	if err != nil {
		t.Fatal(err)
	}
	defer agent.Kill()
	if err := agent.WaitRunning(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := NewSender(bus, keys, SenderOptions{Queue: "requests", Sessions: true, ReplyQueue: "replies", Secrets: dom.Secrets})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u := dom.Sample.InScope
	pw := dom.Secrets.New()
	spec := s.Spec(wire.OpReset, protocol.Target{UserPrincipalName: u.UPN})
	spec.New = pw
	m, err := s.Send(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	res, err := s.Wait(ctx, m.MessageID)
	if err != nil || res.Code != wire.CodeOK {
		t.Fatalf("result %+v, %v", res, err)
	}
	if err := dom.CheckPassword(ctx, u, pw); err != nil {
		t.Fatal(err)
	}
	pw2 := dom.Secrets.New()
	out, err := SendCLI(ctx, bin, bus, keys, pw2.Reveal()+"\n", "--queue", "requests", "--reply-queue", "replies-s", "--session",
		"--op", "reset", "--target", "sAMAccountName="+dom.Sample.NoUPN.SAMAccountName, "--password-stdin")
	if err != nil || out.ExitCode != 0 || out.Result == nil || out.Result.Code != wire.CodeOK {
		t.Fatalf("wbagent send: %+v %v", out, err)
	}
	if err := dom.CheckPassword(ctx, dom.Sample.NoUPN, pw2); err != nil {
		t.Fatal(err)
	}
	if err := agent.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	recs, err := agent.Audit()
	if err != nil || len(recs) != 2 || recs[0].DN != u.DN || recs[1].DN != dom.Sample.NoUPN.DN {
		t.Fatalf("audit %+v %v", recs, err)
	}
	hs, err := agent.Handled()
	if err != nil || len(hs) != 2 || hs[0].Settle != "complete" {
		t.Fatalf("handled %+v %v", hs, err)
	}
	if err := dom.Secrets.ScanError(dir); err != nil {
		t.Fatal(err)
	}
}
