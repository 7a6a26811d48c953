package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"wbagent/internal/bus"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

func TestParseTargetFlag(t *testing.T) {
	for in, want := range map[string]protocol.Target{
		"objectGUID=3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4": {ObjectGUID: "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
		"immutableId=opvjPjVaPkyUSq6wp5wB1A==":            {ImmutableID: "opvjPjVaPkyUSq6wp5wB1A=="},
		"userPrincipalName=alice@corp.example":            {UserPrincipalName: "alice@corp.example"},
		"sAMAccountName=alice":                            {SAMAccountName: "alice"},
		"sAMAccountName=alice@CORP":                       {SAMAccountName: "alice", Domain: "CORP"},
		"sAMAccountName=a@b@corp.example":                 {SAMAccountName: "a@b", Domain: "corp.example"},
	} {
		got, err := parseTargetFlag(in)
		if err != nil || got != want {
			t.Errorf("%s: %+v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "alice", "mail=a@b", "objectGUID=", "objectGUID=xyz", "immutableId=abc", "sAMAccountName=@CORP", "sAMAccountName=alice@"} {
		if _, err := parseTargetFlag(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadPasswords(t *testing.T) {
	o := sendOptions{passwordStdin: true, oldStdn: true}
	oldPw, newPw, err := o.readPasswords(strings.NewReader("0ld pass\r\nnew é pass\nrest"))
	if err != nil {
		t.Fatal(err)
	}
	if oldPw.Reveal() != "0ld pass" || newPw.Reveal() != "new é pass" {
		t.Errorf("read %q %q", oldPw.Reveal(), newPw.Reveal())
	}
	o = sendOptions{passwordStdin: true}
	if _, newPw, err = o.readPasswords(strings.NewReader("no newline")); err != nil || newPw.Reveal() != "no newline" {
		t.Errorf("last line without newline: %v", err)
	}
	for name, in := range map[string]string{
		"empty":    "",
		"blank":    "\n",
		"too long": strings.Repeat("x", maxPasswordLine+1) + "\n",
	} {
		if _, _, err := o.readPasswords(strings.NewReader(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	o = sendOptions{passwordStdin: true, oldStdn: true}
	if _, _, err := o.readPasswords(strings.NewReader("only-old\n")); err == nil {
		t.Error("missing new password accepted")
	}
}

// sendKeys makes a sender key and an agent key set for send tests.
func sendKeys(t *testing.T) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if _, err := protocol.WriteSenderKeys(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := protocol.WriteAgentKeys(dir, protocol.SuiteXWing); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestSendUsage(t *testing.T) {
	dir := sendKeys(t)
	base := []string{"send", "--connection-string", "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true",
		"--queue", "q", "--reply-queue", "r", "--sender-key", filepath.Join(dir, protocol.SenderKeyFile),
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--target", "sAMAccountName=alice"}
	for name, extra := range map[string][]string{
		"no op":              {},
		"bad op":             {"--op", "delete", "--password-stdin"},
		"reset no password":  {"--op", "reset"},
		"reset with old":     {"--op", "reset", "--password-stdin", "--old-password-stdin"},
		"change without old": {"--op", "change", "--password-stdin"},
		"unlock password":    {"--op", "unlock", "--password-stdin"},
		"zero ttl":           {"--op", "unlock", "--ttl", "0s"},
		"both conn strings":  {"--op", "unlock", "--connection-string-env", "CS"},
		"password flag":      {"--op", "reset", "--password", "secret"},
	} {
		_, errOut, code := runCLI(t, "pw\n", nil, append(append([]string{}, base...), extra...)...)
		if code != exitUsage {
			t.Errorf("%s: exit %d, want %d: %s", name, code, exitUsage, errOut)
		}
	}
	noConn := []string{"send", "--queue", "q", "--reply-queue", "r", "--sender-key", filepath.Join(dir, protocol.SenderKeyFile),
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--target", "sAMAccountName=alice", "--op", "unlock"}
	if _, errOut, code := runCLI(t, "", nil, noConn...); code != exitUsage || !strings.Contains(errOut, "--connection-string") {
		t.Errorf("no connection string: %d %s", code, errOut)
	}
	if _, errOut, code := runCLI(t, "", map[string]string{}, append(noConn, "--connection-string-env", "WB_CS")...); code != exitUsage || !strings.Contains(errOut, "WB_CS") {
		t.Errorf("unset env var: %d %s", code, errOut)
	}
}

func TestSendRefusesReadableSenderKey(t *testing.T) {
	dir := sendKeys(t)
	key := filepath.Join(dir, protocol.SenderKeyFile)
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "", map[string]string{"CS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=s;UseDevelopmentEmulator=true"},
		"send", "--connection-string-env", "CS", "--queue", "q", "--reply-queue", "r", "--sender-key", key,
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--op", "unlock", "--target", "sAMAccountName=alice")
	if code != exitError || !strings.Contains(errOut, "chmod 600 "+key) {
		t.Errorf("readable sender key: %d %s", code, errOut)
	}
}

// TestSendNoBus: with nothing listening, send fails with exit 1 within
// --wait, and neither the password nor the connection string's key shows.
func TestSendNoBus(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for connection attempts")
	}
	dir := sendKeys(t)
	const password = "Unshown-Passw0rd!"
	_, errOut, code := runCLI(t, password+"\n", map[string]string{"CS": "Endpoint=sb://127.0.0.1:1;SharedAccessKeyName=k;SharedAccessKey=TopSecretKey;UseDevelopmentEmulator=true"},
		"send", "--connection-string-env", "CS", "--queue", "q", "--reply-queue", "r",
		"--sender-key", filepath.Join(dir, protocol.SenderKeyFile), "--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile),
		"--op", "reset", "--password-stdin", "--target", "sAMAccountName=alice", "--wait", "2s")
	if code != exitError {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if strings.Contains(errOut, password) || strings.Contains(errOut, "TopSecretKey") {
		t.Errorf("stderr leaks a secret: %s", errOut)
	}
}

// responder plays the agent for round-trip tests: it receives one request
// with the SDK, opens it with the real Opener and answers with a signed
// result whose code answer picks.
type responder struct {
	t         *testing.T
	client    *azservicebus.Client
	queue     string
	session   bool
	opener    *protocol.Opener
	signer    *protocol.SigningKey
	answer    func(*protocol.Request) string
	tamper    func(*protocol.Message) // nil, or alters the signed result
	requests  chan *protocol.Request  // each opened request, passwords intact
	responded chan error
}

func (r *responder) run(ctx context.Context) {
	r.responded <- r.once(ctx)
}

func (r *responder) once(ctx context.Context) error {
	var recv interface {
		ReceiveMessages(context.Context, int, *azservicebus.ReceiveMessagesOptions) ([]*azservicebus.ReceivedMessage, error)
		CompleteMessage(context.Context, *azservicebus.ReceivedMessage, *azservicebus.CompleteMessageOptions) error
		Close(context.Context) error
	}
	if r.session {
		sr, err := r.client.AcceptNextSessionForQueue(ctx, r.queue, nil)
		if err != nil {
			return fmt.Errorf("accept request session: %w", err)
		}
		recv = sr
	} else {
		rr, err := r.client.NewReceiverForQueue(r.queue, nil)
		if err != nil {
			return err
		}
		recv = rr
	}
	defer recv.Close(context.Background())
	msgs, err := recv.ReceiveMessages(ctx, 1, nil)
	if err != nil {
		return fmt.Errorf("receive request: %w", err)
	}
	rm := msgs[0]
	m := bus.FromServiceBus(rm)
	if r.session && m.SessionID == "" {
		return errors.New("request on a session queue has no SessionID")
	}
	req, err := r.opener.Open(m, time.Now())
	if err != nil {
		return fmt.Errorf("open request: %w", err)
	}
	r.requests <- req
	res := protocol.NewResult(req.ID, req.Op, r.answer(req), "", "responder-1", time.Now())
	reply, err := protocol.SignResult(r.signer, res, req.ReplyToSessionID)
	if err != nil {
		return err
	}
	if r.tamper != nil {
		r.tamper(&reply)
	}
	s, err := r.client.NewSender(req.ReplyTo, nil)
	if err != nil {
		return err
	}
	defer s.Close(context.Background())
	if err := s.SendMessage(ctx, bus.ToServiceBus(&reply), nil); err != nil {
		return fmt.Errorf("send result: %w", err)
	}
	return recv.CompleteMessage(ctx, rm, nil)
}

// TestSendRoundTrip runs `wbagent send` against devbus with a responder
// acting as the agent, on plain and on session queues.
func TestSendRoundTrip(t *testing.T) {
	if testing.Short() {
		t.Skip("starts devbus")
	}
	dir := sendKeys(t)
	otherDir := t.TempDir()
	if _, err := protocol.WriteAgentKeys(otherDir, protocol.SuiteX25519); err != nil {
		t.Fatal(err)
	}
	hk, agentSigner := loadAgentKeys(t, dir)
	_, forger := loadAgentKeys(t, otherDir)
	senderPub, err := protocol.LoadPublicKey(filepath.Join(dir, protocol.SenderPubFile))
	if err != nil {
		t.Fatal(err)
	}
	opener, err := protocol.NewOpener([]*protocol.DecryptionKey{hk}, []ed25519.PublicKey{senderPub}, protocol.Limits{MaxClockSkew: 2 * time.Minute, MaxLifetime: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	srv := testbed.StartDevbus(ctx, t, devbus.Options{Queues: []devbus.QueueConfig{
		{Name: "writeback"}, {Name: "results"},
		{Name: "writeback-s", RequiresSession: true}, {Name: "results-s", RequiresSession: true},
	}})
	cs := srv.ConnectionString()
	client, err := azservicebus.NewClientFromConnectionString(cs.Reveal(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close(context.Background())

	const newPw, oldPw = "N3w-Passw0rd-é!", "0ld-Passw0rd"
	cases := []struct {
		name     string
		session  bool
		signer   *protocol.SigningKey
		code     string
		args     []string
		stdin    string
		wantExit int
		check    func(t *testing.T, req *protocol.Request)
	}{
		{"reset ok", false, agentSigner, wire.CodeOK,
			[]string{"--op", "reset", "--password-stdin", "--must-change", "--target", "userPrincipalName=alice@corp.example"},
			newPw + "\n", exitOK,
			func(t *testing.T, req *protocol.Request) {
				if req.Op != wire.OpReset || req.New.Reveal() != newPw || !req.MustChange || req.Target.UserPrincipalName != "alice@corp.example" {
					t.Errorf("request %+v", req)
				}
			}},
		{"change on sessions", true, agentSigner, wire.CodeOK,
			[]string{"--op", "change", "--old-password-stdin", "--password-stdin", "--target", "sAMAccountName=alice@CORP", "--actor", "alice", "--actor-kind", "self"},
			oldPw + "\n" + newPw + "\n", exitOK,
			func(t *testing.T, req *protocol.Request) {
				if req.Op != wire.OpChange || req.Old.Reveal() != oldPw || req.New.Reveal() != newPw || req.Actor.Kind != "self" || req.SessionID != req.Target.SessionID() || req.ReplyToSessionID == "" {
					t.Errorf("request %+v", req)
				}
			}},
		{"failed result", true, agentSigner, wire.CodePasswordPolicy,
			[]string{"--op", "reset", "--password-stdin", "--target", "objectGUID=3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4"},
			newPw + "\n", exitNegative, nil},
		{"unlock", false, agentSigner, wire.CodeOK,
			[]string{"--op", "unlock", "--target", "immutableId=opvjPjVaPkyUSq6wp5wB1A=="},
			"", exitOK,
			func(t *testing.T, req *protocol.Request) {
				if !req.Unlock || req.New != nil {
					t.Errorf("request %+v", req)
				}
			}},
		{"forged result", false, forger, wire.CodeOK,
			[]string{"--op", "unlock", "--target", "sAMAccountName=bob"},
			"", exitError, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			queue, reply := "writeback", "results"
			if c.session {
				queue, reply = "writeback-s", "results-s"
			}
			r := &responder{t: t, client: client, queue: queue, session: c.session, opener: opener, signer: c.signer,
				answer: func(*protocol.Request) string { return c.code },
				// A forger claims the agent's kid for its own signature.
				tamper:   func(m *protocol.Message) { m.ApplicationProperties[protocol.PropSender] = agentSigner.KID() },
				requests: make(chan *protocol.Request, 1), responded: make(chan error, 1)}
			go r.run(ctx)
			args := append([]string{"send", "--connection-string-env", "WB_CS", "--queue", queue, "--reply-queue", reply,
				"--sender-key", filepath.Join(dir, protocol.SenderKeyFile), "--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile),
				"--agent-signing-key", filepath.Join(dir, protocol.AgentSignPubFile), "--wait", "30s"}, c.args...)
			if c.session {
				args = append(args, "--session")
			}
			out, errOut, code := runCLI(t, c.stdin, map[string]string{"WB_CS": cs.Reveal()}, args...)
			if err := <-r.responded; err != nil {
				t.Fatalf("responder: %v", err)
			}
			req := <-r.requests
			defer req.Destroy()
			if code != c.wantExit {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, c.wantExit, out, errOut)
			}
			if strings.Contains(out+errOut, newPw) || strings.Contains(out+errOut, oldPw) {
				t.Errorf("output shows a password:\n%s\n%s", out, errOut)
			}
			if c.wantExit != exitError {
				res, err := protocol.ParseResult([]byte(strings.TrimSpace(out)))
				if err != nil {
					t.Fatalf("stdout is not the result JSON: %v\n%s", err, out)
				}
				if res.ID != req.ID || res.Code != c.code {
					t.Errorf("result %+v", res)
				}
			} else if !strings.Contains(errOut, "bad signature") {
				t.Errorf("forged result not reported as a signature failure: %s", errOut)
			}
			if c.check != nil {
				c.check(t, req)
			}
		})
	}

	// Nobody answers: exit 1 once --wait has passed.
	_, errOut, code := runCLI(t, "", map[string]string{"WB_CS": cs.Reveal()}, "send", "--connection-string-env", "WB_CS",
		"--queue", "writeback", "--reply-queue", "results", "--sender-key", filepath.Join(dir, protocol.SenderKeyFile),
		"--agent-key", filepath.Join(dir, protocol.AgentHPKEPubFile), "--op", "unlock", "--target", "sAMAccountName=carol", "--wait", "2s")
	if code != exitError || !strings.Contains(errOut, "no result") {
		t.Errorf("unanswered: exit %d: %s", code, errOut)
	}
}
