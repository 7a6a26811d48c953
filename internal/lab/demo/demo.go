package demo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Options configure a demo run.
type Options struct {
	// Agent is the wbagent binary to run; empty builds it from the
	// checkout holding the working directory.
	Agent string
	// Keep leaves the demo's folder (config, keys, logs, audit trail) in
	// place and says where it is.
	Keep bool
}

// Run runs the demo with default options.
func Run(ctx context.Context, out io.Writer) error { return Options{}.Run(ctx, out) }

// Queue names of the demo.
const (
	requestQueue = "password-writeback"
	replyQueue   = "writeback-results"
)

// demo is one run's state.
type demo struct {
	out   io.Writer
	bin   string
	dir   string
	dom   *testbed.Domain
	keys  *testbed.Keys
	bus   *testbed.Bus
	agent *testbed.Agent
	send  *testbed.Sender
	start time.Time
	usn   string // the directory's highestCommittedUSN before the current request
}

// Run provisions, demonstrates and tears down; see the package comment.
func (o Options) Run(ctx context.Context, out io.Writer) (err error) {
	d := &demo{out: out, start: time.Now()}
	if d.dir, err = os.MkdirTemp("", "wbagent-demo-"); err != nil {
		return fmt.Errorf("demo: create a work folder: %w", err)
	}
	defer func() {
		err = errors.Join(err, d.teardown(o.Keep))
	}()
	d.say("wbagent demo: password writeback from a cloud portal to Active Directory, end to end, on this machine.")
	d.say("Everything is real and throwaway: a Samba AD domain controller, a local Service Bus-compatible")
	d.say("endpoint, and the agent exactly as the service runs it. Nothing leaves 127.0.0.0/8.")
	d.bin = o.Agent
	if d.bin == "" {
		d.say("Building wbagent from this checkout ...")
		if d.bin, err = testbed.BuildAgent(ctx, d.dir); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	for _, step := range []func(context.Context) error{d.setUp, d.requests, d.auditTrail, d.leaks} {
		if err := step(ctx); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	}
	return nil
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) heading(title string) {
	d.say("\n== %s %s", title, strings.Repeat("=", max(0, 66-len(title))))
}

// setUp starts the domain, the bus and the agent.
func (d *demo) setUp(ctx context.Context) error {
	d.heading("1. A throwaway Active Directory domain")
	t := time.Now()
	dom, err := testbed.StartDomain(ctx, testbed.DomainOptions{})
	if err != nil {
		return err
	}
	d.dom = dom
	dc := dom.DC
	s := dom.Sample
	d.say("Samba AD DC for %s (NetBIOS %s) is running on %s (LDAPS %s), ready in %s.",
		dc.Realm(), dc.NetBIOS(), dc.IP(), dc.LDAPSURL(), since(t))
	d.say("  OU=Staff    the agent may write here: rights delegated to %s by installer/ad/delegate-samba.sh", dom.Service.SAMAccountName)
	d.say("  OU=Outside  not in the agent's scope")
	d.say("  %s is an ordinary user: no admin group, only reset password, lockoutTime and pwdLastSet on OU=Staff.", dom.Service.UPN)
	d.say("Sample users in OU=Staff: %s; %s (locked out after 3 bad passwords);", s.InScope.UPN, s.Locked.UPN)
	d.say("  %s; %s (a Domain Admin).", s.DistinctUPN.UPN, s.DomainAdmin.UPN)
	d.say("Password policy: at least 7 characters, complexity on, last 24 passwords remembered.")

	d.heading("2. Keys, the local Service Bus and the agent")
	if d.keys, err = testbed.NewKeys(filepath.Join(d.dir, "keys"), protocol.SuiteXWing); err != nil {
		return err
	}
	d.say("Agent keys: requests are encrypted to HPKE key %s (suite %s: ML-KEM-768 + X25519); results are signed with Ed25519 key %s.",
		d.keys.Agent.KID(), d.keys.Agent.Suite(), protocol.KID(d.keys.ResultKey))
	d.say("The portal (sender) signs requests with kid %s; the agent trusts only that key.", d.keys.Signer.KID())
	if d.bus, err = testbed.StartBus(ctx, testbed.BusOptions{Binary: d.bin, Dir: d.dir, Queues: []devbus.QueueConfig{
		{Name: requestQueue, RequiresSession: true, LockDuration: 30 * time.Second},
		{Name: replyQueue},
	}}); err != nil {
		return err
	}
	d.say("wbagent devbus (a local, Service Bus-compatible AMQP endpoint) listens on %s with queues %q (one session per user) and %q.",
		busHost(d.bus), requestQueue, replyQueue)
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: filepath.Join(d.dir, "agent"), Name: "demo-agent",
		Queue: requestQueue, Sessions: true, HTTP: true, Keys: d.keys}, dom)
	if err != nil {
		return err
	}
	if d.agent, err = testbed.StartAgent(d.bin, files, testbed.AgentEnv(d.bus, dom)); err != nil {
		return err
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := d.agent.WaitRunning(wait); err != nil {
		return err
	}
	d.say("wbagent run --config %s is running (pid %d); it binds to the DC as %s over LDAPS.",
		files.Config, d.agent.PID(), dom.Service.UPN)
	d.send, err = testbed.NewSender(d.bus, d.keys, testbed.SenderOptions{Queue: requestQueue, Sessions: true,
		ReplyQueue: replyQueue, Secrets: dom.Secrets})
	return err
}

// request is one demonstrated writeback.
type request struct {
	title  string
	spec   protocol.RequestSpec
	user   *testbed.User // nil: no such account
	code   string
	detail string
	// before shows the account's state before the request; check proves
	// the effect (or its absence) on the directory afterwards.
	before func(ctx context.Context) (string, error)
	check  func(ctx context.Context) (string, error)
}

func (d *demo) requests(ctx context.Context) error {
	d.heading("3. Five requests, as a cloud portal would send them")
	d.say("Each request is signed by the portal and its password sealed to the agent's key (HPKE):")
	d.say("Service Bus and anyone reading the queue see ciphertext only.")
	s := d.dom.Sample
	realm := d.dom.DC.Realm()
	annPw, louPw := d.dom.Secrets.New(), d.dom.Secrets.New()
	short := secret.FromString("Ab1!")
	d.dom.Secrets.TrackString(short.Reveal())
	danaPw, nobodyPw := d.dom.Secrets.New(), d.dom.Secrets.New()
	reqs := []request{
		{title: "Help desk resets the password of " + s.InScope.UPN, user: s.InScope, code: wire.CodeOK,
			spec:  d.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.InScope.UPN}, annPw, nil),
			check: d.signsIn(s.InScope, annPw, "")},
		{title: "Help desk resets and unlocks " + s.Locked.UPN + " (locked out)", user: s.Locked, code: wire.CodeOK,
			spec:   d.unlock(d.spec(wire.OpReset, protocol.Target{ObjectGUID: s.Locked.ObjectGUID}, louPw, nil)),
			before: d.lockedOut(s.Locked),
			check:  d.signsIn(s.Locked, louPw, "")},
		{title: s.DistinctUPN.UPN + " changes their own password to a 4-character one", user: s.DistinctUPN,
			code: wire.CodePasswordPolicy, detail: wire.DetailTooShort,
			spec:  d.self(d.spec(wire.OpChange, protocol.Target{SAMAccountName: s.DistinctUPN.SAMAccountName, Domain: d.dom.DC.NetBIOS()}, short, s.DistinctUPN.Password)),
			check: d.signsIn(s.DistinctUPN, s.DistinctUPN.Password, "still signs in with the old password")},
		{title: "Someone asks to reset the Domain Admin " + s.DomainAdmin.UPN, user: s.DomainAdmin, code: wire.CodeProtectedAccount,
			spec:  d.spec(wire.OpReset, protocol.Target{UserPrincipalName: s.DomainAdmin.UPN}, danaPw, nil),
			check: d.signsIn(s.DomainAdmin, s.DomainAdmin.Password, "still signs in with the old password")},
		{title: "Help desk resets nobody@" + realm + ", who does not exist", code: wire.CodeUserNotFound,
			spec:  d.spec(wire.OpReset, protocol.Target{UserPrincipalName: "nobody@" + realm}, nobodyPw, nil),
			check: d.unchanged()},
	}
	for i, r := range reqs {
		if err := d.run(ctx, i+1, len(reqs), r); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) spec(op wire.Op, t protocol.Target, newPw, oldPw *secret.Secret) protocol.RequestSpec {
	s := d.send.Spec(op, t)
	s.New, s.Old = newPw, oldPw
	return s
}

func (d *demo) unlock(s protocol.RequestSpec) protocol.RequestSpec { s.Unlock = true; return s }

func (d *demo) self(s protocol.RequestSpec) protocol.RequestSpec {
	s.Actor = protocol.Actor{ID: s.Target.SAMAccountName + "@contoso.example", Kind: protocol.ActorSelf, IP: "198.51.100.23"}
	return s
}

// signsIn returns a check that binds as u with pw, as the user's logon
// would; note describes success.
func (d *demo) signsIn(u *testbed.User, pw *secret.Secret, note string) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if err := d.dom.CheckPassword(ctx, u, pw); err != nil {
			return "", fmt.Errorf("%s: %w", u.SAMAccountName, err)
		}
		if note == "" {
			note = "signs in with the new password"
		}
		return fmt.Sprintf("%s %s (checked by an LDAP bind as the user)", u.SAMAccountName, note), nil
	}
}

// lockedOut returns a check that shows u cannot sign in because the
// account is locked.
func (d *demo) lockedOut(u *testbed.User) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		err := d.dom.CheckPassword(ctx, u, u.Password)
		if testbed.BindCode(err) != "775" {
			return "", fmt.Errorf("%s should be locked out, but a bind with the right password says: %v", u.SAMAccountName, err)
		}
		return u.SAMAccountName + " cannot sign in even with the right password: the DC answers 775, account locked out", nil
	}
}

// unchanged returns a check that the directory took no write since the
// previous request: its highestCommittedUSN has not moved.
func (d *demo) unchanged() func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		if d.usn == "" {
			return "", errors.New("no USN was read before the request")
		}
		usn, err := d.dom.HighestUSN(ctx)
		if err != nil {
			return "", err
		}
		if usn != d.usn {
			return "", fmt.Errorf("the directory changed (highestCommittedUSN %s -> %s)", d.usn, usn)
		}
		return "nothing was written to the directory (its highestCommittedUSN is still " + usn + ")", nil
	}
}

// run sends one request, waits for its result and prints both.
func (d *demo) run(ctx context.Context, n, total int, r request) error {
	d.say("\n[%d/%d] %s", n, total, r.title)
	if r.before != nil {
		note, err := r.before(ctx)
		if err != nil {
			return fmt.Errorf("request %d: %w", n, err)
		}
		d.say("  before:  %s", note)
	}
	usn, err := d.dom.HighestUSN(ctx)
	if err != nil {
		return err
	}
	d.usn = usn
	m, err := d.send.Send(ctx, r.spec)
	if err != nil {
		return err
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t := time.Now()
	res, err := d.send.Wait(wait, m.MessageID)
	if err != nil {
		return fmt.Errorf("request %d: %w (agent log: %s)", n, err, d.agent.Files.Log)
	}
	d.say("  asked:   %s %s, by %s (%s), request id %s", r.spec.Op, describeOptions(r.spec), r.spec.Actor.ID, r.spec.Actor.Kind, m.MessageID)
	d.say("           target %s", targetText(r.spec.Target))
	code := res.Code
	if res.Detail != "" {
		code += " (" + res.Detail + ")"
	}
	d.say("  result:  %s, code %s, in %s", strings.ToUpper(res.Status), code, since(t))
	d.say("  reason:  %q  <- what the portal shows the user", res.Reason)
	if res.Code != r.code || res.Detail != r.detail {
		return fmt.Errorf("request %d: got %s/%s, expected %s/%s", n, res.Code, res.Detail, r.code, r.detail)
	}
	if r.check != nil {
		note, err := r.check(ctx)
		if err != nil {
			return fmt.Errorf("request %d: the directory is not as the result says: %w", n, err)
		}
		d.say("  check:   %s", note)
	}
	return nil
}

func describeOptions(s protocol.RequestSpec) string {
	var o []string
	if s.Op == wire.OpReset || s.Op == wire.OpChange {
		o = append(o, "password")
	}
	if s.Unlock {
		o = append(o, "+ unlock")
	}
	if s.MustChange {
		o = append(o, "+ must change at next logon")
	}
	return strings.Join(o, " ")
}

func targetText(t protocol.Target) string {
	switch {
	case t.ObjectGUID != "":
		return "objectGUID=" + t.ObjectGUID
	case t.ImmutableID != "":
		return "immutableId=" + t.ImmutableID
	case t.UserPrincipalName != "":
		return "userPrincipalName=" + t.UserPrincipalName
	case t.Domain != "":
		return "sAMAccountName=" + t.SAMAccountName + " in domain " + t.Domain
	}
	return "sAMAccountName=" + t.SAMAccountName
}

// auditTrail prints the audit file and verifies it with the CLI.
func (d *demo) auditTrail(ctx context.Context) error {
	d.heading("4. The audit trail")
	// A stopped agent has flushed and closed everything it wrote.
	if err := d.agent.Stop(30 * time.Second); err != nil {
		return err
	}
	b, err := os.ReadFile(d.agent.Files.Audit)
	if err != nil {
		return fmt.Errorf("read the audit trail: %w", err)
	}
	recs, err := testbed.ReadAudit(d.agent.Files.Audit)
	if err != nil {
		return err
	}
	if len(recs) != 5 {
		return fmt.Errorf("the audit trail has %d lines, expected one per request (5)", len(recs))
	}
	d.say("%s has one line per outcome, in short:", d.agent.Files.Audit)
	d.say("  %-12s  %-6s  %-6s  %-24s  %-32s  %s", "time (UTC)", "event", "op", "actor", "code", "account written or refused")
	for _, r := range recs {
		code := r.Code
		if r.Detail != "" {
			code += " (" + r.Detail + ")"
		}
		actor := ""
		if r.Actor != nil {
			actor = r.Actor.ID
		}
		account := r.DN
		if account == "" {
			account = "(none found)"
		}
		d.say("  %-12s  %-6s  %-6s  %-24s  %-32s  %s", r.Time.UTC().Format("15:04:05.000"), r.Event, r.Op, actor, code, account)
	}
	d.say("\nThe lines as written: JSON, each with the hash of the line before it, so any edit breaks the chain.")
	d.say("They name who asked and what was decided, never a password:")
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		d.say("  %s", l)
	}
	d.say("\n$ wbagent audit verify %s", d.agent.Files.Audit)
	cmd := exec.CommandContext(ctx, d.bin, "audit", "verify", d.agent.Files.Audit)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	runErr := cmd.Run()
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		d.say("  %s", l)
	}
	if runErr != nil {
		return fmt.Errorf("wbagent audit verify: %w", runErr)
	}
	return nil
}

// leaks proves no password reached a file the demo wrote.
func (d *demo) leaks(context.Context) error {
	d.heading("5. No password in any file")
	files := 0
	_ = filepath.WalkDir(d.dir, func(_ string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			files++
		}
		return nil
	})
	if err := d.dom.Secrets.ScanError(d.dir); err != nil {
		return err
	}
	d.say("Searched %d files (config, logs, audit trail, agent state, devbus log) for the %d passwords used,",
		files, d.dom.Secrets.Len())
	d.say("as UTF-8, JSON-escaped and UTF-16: none found.")
	return nil
}

// teardown stops everything and removes the folder unless keep.
func (d *demo) teardown(keep bool) error {
	var errs []error
	if d.send != nil {
		errs = append(errs, d.send.Close())
	}
	if d.agent != nil && d.agent.Running() {
		errs = append(errs, d.agent.Stop(30*time.Second))
	}
	if d.bus != nil {
		errs = append(errs, d.bus.Close())
	}
	if d.dom != nil {
		errs = append(errs, d.dom.Stop())
	}
	if keep {
		d.say("\nKept the demo's files in %s.", d.dir)
	} else if d.dir != "" {
		errs = append(errs, os.RemoveAll(d.dir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("demo teardown: %w", err)
	}
	d.say("\nTorn down: agent, devbus and the DC stopped, files removed. The demo took %s.", since(d.start))
	d.say("To try your own requests against your own directory: wbagent dev --config FILE prints a ready-to-paste command.")
	return nil
}

func since(t time.Time) string { return time.Since(t).Round(time.Millisecond).String() }

// busHost is the bus's host:port, from its connection string.
func busHost(b *testbed.Bus) string {
	cs := b.ConnectionString().Reveal()
	_, rest, _ := strings.Cut(cs, "sb://")
	host, _, _ := strings.Cut(rest, ";")
	return strings.TrimSuffix(host, "/")
}
