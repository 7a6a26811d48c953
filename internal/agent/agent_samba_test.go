//go:debug x509negativeserial=1

// The test binary parses certificates as the wbagent binary does
// (agent/main.go): Samba's own certificates often carry a negative serial.

package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"wbagent/internal/audit"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/sambadc"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// The whole pipeline against a real Samba AD DC and devbus, with requests
// sent and results read through the real SDK: once with the certificate
// the harness issues (with subjectAltName), once with the one Samba makes
// for itself (CN only, often a negative serial), trusted through the DC's
// own ca.pem, as an admin who leaves Samba's TLS alone would.
func TestPipelineAgainstSambaAndDevbus(t *testing.T) {
	for _, tc := range []struct {
		name string
		own  bool
	}{{"harness certificate", false}, {"Samba's own certificate", true}} {
		t.Run(tc.name, func(t *testing.T) { pipelineAgainstSamba(t, sambadc.Options{SambaCert: tc.own}) })
	}
}

func pipelineAgainstSamba(t *testing.T, opts sambadc.Options) {
	ctx := testbed.IntegrationContext(t, "integration test: needs a Samba AD DC and devbus", 4*time.Minute)
	dc := sambadc.StartTest(ctx, t, opts)
	// A change right after a reset must not be refused as too young; a
	// lockout threshold lets the test lock an account to unlock it.
	if err := dc.SetPasswordPolicy(ctx, sambadc.PasswordPolicy{MinAge: sambadc.Ptr(time.Duration(0)), LockoutThreshold: sambadc.Ptr(3)}); err != nil {
		t.Fatal(err)
	}
	svcPw := "Svc-Writeback-Passw0rd"
	staff, err := dc.StaffWithService(ctx, "svc-wb", secret.FromString(svcPw))
	if err != nil {
		t.Fatal(err)
	}
	firstPw := "First-Passw0rd-1"
	alice, err := dc.CreateUser(ctx, sambadc.UserSpec{Name: "alice", OU: staff, Password: secret.FromString(firstPw)})
	if err != nil {
		t.Fatal(err)
	}
	srv := testbed.StartDevbus(ctx, t, devbus.Options{Queues: []devbus.QueueConfig{
		{Name: "requests", RequiresSession: true, LockDuration: 5 * time.Second}, {Name: "replies"},
	}})

	dir := t.TempDir()
	cfg := testbed.WritePipelineConfig(t, testbed.PipelineConfig{
		Dir: dir, Queue: "requests", Sessions: true,
		LDAPSURL: dc.LDAPSURL(), CAFile: dc.CACertPath(), ServerName: dc.ServerName(),
		BindUser: "svc-wb@" + dc.Realm(), BindPass: svcPw, BaseDN: dc.BaseDN(), Realm: dc.Realm(), NetBIOS: dc.NetBIOS(),
		IncludeOU: staff,
	})
	logFile, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), logFile, zap.DebugLevel))
	deps := testEnv(map[string]string{"TEST_SB_CONNECTION": srv.ConnectionString().Reveal()})
	deps.Logger = log
	p, err := New(ctx, cfg, deps)
	if err != nil {
		t.Fatalf("build the agent: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		_ = p.Stop(ctx)
		t.Fatalf("start the agent: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = p.Stop(context.Background())
		}
	}()

	c := newCloud(ctx, t, srv, dir)
	send, result := c.send, c.result
	self := protocol.Actor{ID: "alice@" + dc.Realm(), Kind: protocol.ActorSelf}
	request := func(op wire.Op, target protocol.Target, newPw, oldPw string) protocol.Message {
		t.Helper()
		return c.request(op, target, self, newPw, oldPw)
	}
	byGUID := protocol.Target{ObjectGUID: alice.ObjectGUID}
	passwords := []string{svcPw, firstPw}

	// A reset by objectGUID.
	resetPw := "Reset-Passw0rd-2"
	passwords = append(passwords, resetPw)
	reset := request(wire.OpReset, byGUID, resetPw, "")
	send(reset)
	if r := result(reset.MessageID); r.Code != wire.CodeOK {
		t.Fatalf("reset: %+v", r)
	}
	if err := dc.Bind(ctx, alice.DN, secret.FromString(resetPw)); err != nil {
		t.Fatalf("bind with the reset password: %v", err)
	}
	// The same request again: the first result, no second write.
	send(reset)
	if r := result(reset.MessageID); r.Code != wire.CodeOK {
		t.Fatalf("replayed reset: %+v", r)
	}
	// A change with a wrong old password, then with the right one, by UPN.
	byUPN := protocol.Target{UserPrincipalName: alice.UPN}
	changePw := "Changed-Passw0rd-3"
	passwords = append(passwords, changePw, "Not-The-Passw0rd")
	wrong := request(wire.OpChange, byUPN, changePw, "Not-The-Passw0rd")
	send(wrong)
	if r := result(wrong.MessageID); r.Code != wire.CodeWrongOldPassword {
		t.Fatalf("change with a wrong old password: %+v", r)
	}
	change := request(wire.OpChange, byUPN, changePw, resetPw)
	send(change)
	if r := result(change.MessageID); r.Code != wire.CodeOK {
		t.Fatalf("change: %+v", r)
	}
	if err := dc.Bind(ctx, alice.DN, secret.FromString(changePw)); err != nil {
		t.Fatalf("bind with the changed password: %v", err)
	}
	// Locked out by bad binds, then unlocked through the agent.
	if err := dc.Lock(ctx, alice.UPN, alice.DN); err != nil {
		t.Fatal(err)
	}
	unlock := request(wire.OpUnlock, byGUID, "", "")
	send(unlock)
	if r := result(unlock.MessageID); r.Code != wire.CodeOK {
		t.Fatalf("unlock: %+v", r)
	}
	if locked, err := dc.Locked(ctx, alice.DN); err != nil || locked {
		t.Fatalf("still locked after the unlock: %v %v", locked, err)
	}
	if err := dc.Bind(ctx, alice.DN, secret.FromString(changePw)); err != nil {
		t.Fatalf("bind after the unlock: %v", err)
	}
	// Nobody by that name; an account outside the scope.
	nobody := request(wire.OpUnlock, protocol.Target{SAMAccountName: "nobody"}, "", "")
	send(nobody)
	if r := result(nobody.MessageID); r.Code != wire.CodeUserNotFound {
		t.Fatalf("unknown user: %+v", r)
	}
	admin := request(wire.OpUnlock, protocol.Target{SAMAccountName: "Administrator"}, "", "")
	send(admin)
	if r := result(admin.MessageID); r.Code != wire.CodeOutOfScope && r.Code != wire.CodeProtectedAccount {
		t.Fatalf("administrator: %+v", r)
	}
	// A forged request is dead-lettered without a result.
	forged := request(wire.OpReset, byGUID, "Forged-Passw0rd-9", "")
	passwords = append(passwords, "Forged-Passw0rd-9")
	forged.ApplicationProperties[protocol.PropSignature] = c.signer.Sign([]byte("something else"))
	send(forged)
	var dl []devbus.MessageInfo
	testkit.WaitFor(t, 30*time.Second, "the forged request to be dead-lettered", func() bool {
		dl, _ = srv.DeadLetters("requests")
		return len(dl) == 1
	})
	if dl[0].DeadLetterReason != "unauthenticated" {
		t.Fatalf("dead letter %+v", dl[0])
	}
	checks := p.ReadyChecks()
	for name, check := range checks {
		if err := check(ctx); err != nil {
			t.Errorf("%s not ready: %v", name, err)
		}
	}
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := p.Stop(sctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	stopped = true

	// The audit trail: one verified line per outcome, the replay marked.
	raw, err := os.ReadFile(cfg.Audit.File)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(raw))
	if err != nil || rep.Broken != 0 || rep.Lines != 8 {
		t.Fatalf("audit verify: %+v %v\n%s", rep, err, raw)
	}
	var events []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var r audit.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		events = append(events, r.Event+":"+r.Code)
	}
	want := "result:ok replayed:ok result:wrong_old_password result:ok result:ok result:user_not_found"
	if got := strings.Join(events[:6], " "); got != want {
		t.Fatalf("audit events %s, want %s", got, want)
	}
	if events[7] != "dead_lettered:unauthenticated" {
		t.Fatalf("audit events %v", events)
	}
	// No password reached the log or the audit trail.
	logged, err := os.ReadFile(logFile.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range passwords {
		if bytes.Contains(raw, []byte(pw)) || bytes.Contains(logged, []byte(pw)) {
			t.Errorf("password %d appears in the audit trail or the log", len(pw))
		}
	}
}
