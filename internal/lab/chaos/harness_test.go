package chaos

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"wbagent/internal/audit"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

var fullFlag = flag.Bool("full", false, "run the full chaos suite (make chaos); without it the short form runs")

// full reports whether the full suite runs: -full, or WBAGENT_CHAOS=full.
func full() bool { return *fullFlag || os.Getenv("WBAGENT_CHAOS") == "full" }

// pick returns short in the short form and long in the full one.
func pick[T any](short, long T) T {
	if full() {
		return long
	}
	return short
}

// shared is what every scenario uses: the agent binary, one Samba AD DC
// (scenarios make their own accounts) and one key set.
type shared struct {
	dir  string
	bin  string
	dom  *testbed.Domain
	keys *testbed.Keys
	err  error
}

var (
	setupOnce sync.Once
	sh        shared
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if sh.dom != nil {
		_ = sh.dom.Stop()
	}
	if sh.dir != "" {
		_ = os.RemoveAll(sh.dir)
	}
	os.Exit(code)
}

// setup builds the agent and starts the DC once per test binary. The
// suite needs Samba: without it the tests fail and say how to install it.
func setup(t *testing.T) *shared {
	t.Helper()
	if testing.Short() {
		t.Skip("chaos: needs a Samba AD DC, devbus and agent processes (not run with -short)")
	}
	setupOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if sh.dir, sh.err = os.MkdirTemp("", "wbchaos-"); sh.err != nil {
			return
		}
		if sh.bin, sh.err = testbed.BuildAgent(ctx, sh.dir); sh.err != nil {
			return
		}
		if sh.dom, sh.err = testbed.StartDomain(ctx, testbed.DomainOptions{}); sh.err != nil {
			sh.err = fmt.Errorf("%w (run `make deps` to install Samba)", sh.err)
			return
		}
		sh.keys, sh.err = testbed.NewKeys(filepath.Join(sh.dir, "keys"), protocol.SuiteXWing)
	})
	if sh.err != nil {
		t.Fatal(sh.err)
	}
	return &sh
}

// worldOptions shape one scenario's queue.
type worldOptions struct {
	Sessions bool
	// Queue's name and session flag are set by newWorld; the rest (lock
	// duration, max delivery count, duplicate detection) is the
	// scenario's.
	Queue devbus.QueueConfig
	// TTL is the lifetime of requests; default the scenario's own
	// lifetime. The broker drops a request whose time runs out unread, so
	// a shorter default would let a slow run lose requests to expiry and
	// read as results lost to the fault.
	TTL time.Duration
}

// world is one scenario: its own in-process devbus (for fault
// injection), sender, agents and accounts, on the shared DC.
type world struct {
	t        *testing.T
	ctx      context.Context
	sh       *shared
	dir      string
	bus      *testbed.Bus
	srv      *devbus.Server
	sessions bool
	sender   *testbed.Sender
	agents   []*testbed.Agent

	mu   sync.Mutex
	reqs []*request
}

const (
	queueName = "requests"
	replyName = "replies"
)

func newWorld(t *testing.T, o worldOptions) *world {
	sh := setup(t)
	life := pick(3*time.Minute, 15*time.Minute)
	ctx, cancel := context.WithTimeout(context.Background(), life)
	t.Cleanup(cancel)
	if o.TTL == 0 {
		o.TTL = life
	}
	q := o.Queue
	q.Name, q.RequiresSession = queueName, o.Sessions
	w := &world{t: t, ctx: ctx, sh: sh, dir: t.TempDir(), sessions: o.Sessions}
	var err error
	w.bus, err = testbed.StartBus(ctx, testbed.BusOptions{Queues: []devbus.QueueConfig{q, {Name: replyName}}})
	if err != nil {
		t.Fatal(err)
	}
	w.srv = w.bus.Server
	t.Cleanup(func() { _ = w.bus.Close() })
	w.sender, err = testbed.NewSender(w.bus, sh.keys, testbed.SenderOptions{Queue: queueName, Sessions: o.Sessions,
		ReplyQueue: replyName, Secrets: sh.dom.Secrets, TTL: o.TTL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.sender.Close() })
	t.Cleanup(func() {
		for _, a := range w.agents {
			a.Kill()
		}
	})
	return w
}

// account is a directory user of one scenario and what the requests sent
// so far should leave it with.
type account struct {
	user *testbed.User
	// v0 is unicodePwd's version when the scenario began.
	v0 uint32
	// expect is the password the account has once every request sent so
	// far has been applied (the old password of the next change).
	expect *secret.Secret
}

// accounts creates n users for this scenario.
func (w *world) accounts(n int) []*account {
	w.t.Helper()
	users, err := w.sh.dom.AddUsers(w.ctx, w.sh.dom.UniqueName("cx"), w.sh.dom.Staff, n)
	if err != nil {
		w.t.Fatal(err)
	}
	out := make([]*account, len(users))
	for i, u := range users {
		v, err := pwdVersion(w.ctx, w.sh.dom, u.DN)
		if err != nil {
			w.t.Fatal(err)
		}
		out[i] = &account{user: u, v0: v, expect: u.Password}
	}
	return out
}

// unicodePwdAttID is unicodePwd's attribute id in replPropertyMetaData.
const unicodePwdAttID = 0x9005a

// pwdVersion reads the version of unicodePwd in the account's replication
// metadata: it grows by one with every password write, so the difference
// between two readings counts the writes that took effect.
func pwdVersion(ctx context.Context, dom *testbed.Domain, dn string) (uint32, error) {
	e, err := dom.DC.Entry(ctx, dn, "replPropertyMetaData")
	if err != nil {
		return 0, err
	}
	raw := e.GetRawAttributeValue("replPropertyMetaData")
	// replPropertyMetaDataBlob: version, reserved, count, reserved (4 bytes
	// each), then count entries of 48 bytes: attid, version, change time
	// (8), invocation id (16), originating USN (8), local USN (8).
	if len(raw) < 16 {
		return 0, fmt.Errorf("replPropertyMetaData of %s: %d bytes", dn, len(raw))
	}
	n := int(binary.LittleEndian.Uint32(raw[8:12]))
	for i := range n {
		o := 16 + 48*i
		if o+8 > len(raw) {
			break
		}
		if binary.LittleEndian.Uint32(raw[o:]) == unicodePwdAttID {
			return binary.LittleEndian.Uint32(raw[o+4:]), nil
		}
	}
	return 0, fmt.Errorf("replPropertyMetaData of %s has no unicodePwd", dn)
}

// agentOption edits an agent's config before it is written.
type agentOption func(*testbed.AgentConfig)

// startAgent configures and starts one `wbagent run` on the scenario's
// queue, with /readyz served, and waits until it runs.
func (w *world) startAgent(name string, opts ...agentOption) *testbed.Agent {
	w.t.Helper()
	return w.runAgent(w.writeAgent(name, opts...))
}

// writeAgent writes the config startAgent starts an agent with, for a
// scenario that moves its files first.
func (w *world) writeAgent(name string, opts ...agentOption) *testbed.AgentFiles {
	w.t.Helper()
	c := testbed.AgentConfig{Dir: filepath.Join(w.dir, name), Name: name, Queue: queueName, Sessions: w.sessions,
		Keys: w.sh.keys, HTTP: true}
	for _, o := range opts {
		o(&c)
	}
	files, err := testbed.WriteAgentConfig(c, w.sh.dom)
	if err != nil {
		w.t.Fatal(err)
	}
	return files
}

// resetAll sends one reset to each account.
func (w *world) resetAll(accts []*account) []*request {
	var rs []*request
	for _, acct := range accts {
		rs = append(rs, w.send(acct, wire.OpReset, nil))
	}
	return rs
}

// runAgent starts an agent whose config is written.
func (w *world) runAgent(files *testbed.AgentFiles) *testbed.Agent {
	w.t.Helper()
	a, err := testbed.StartAgent(w.sh.bin, files, testbed.AgentEnv(w.bus, w.sh.dom))
	if err != nil {
		w.t.Fatal(err)
	}
	w.agents = append(w.agents, a)
	if err := a.WaitRunning(w.ctx); err != nil {
		w.t.Fatal(err)
	}
	return a
}

// request is one valid request the scenario sent.
type request struct {
	id   string
	acct *account
	op   wire.Op
	// pw is the new password it sets.
	pw *secret.Secret
	// mayGoUnanswered marks a request allowed to end without a result:
	// one that expires while the fault lasts (the broker drops it).
	mayGoUnanswered bool
}

// send builds a request for a and sends it, retrying the send while the
// bus is disrupted (the queue's duplicate detection, when on, drops a
// retry of a send that did arrive; the agent's ledger answers it anyway).
func (w *world) send(a *account, op wire.Op, edit func(*protocol.RequestSpec)) *request {
	w.t.Helper()
	spec := w.sender.Spec(op, protocol.Target{UserPrincipalName: a.user.UPN})
	spec.New = w.sh.dom.Secrets.New()
	if op == wire.OpChange {
		spec.Old = a.expect
	}
	if edit != nil {
		edit(&spec)
	}
	m, err := w.sender.Send(w.ctx, spec)
	if m.MessageID == "" {
		w.t.Fatalf("build request: %v", err)
	}
	for deadline := time.Now().Add(time.Minute); err != nil; {
		if time.Now().After(deadline) || w.ctx.Err() != nil {
			w.t.Fatalf("send %s: %v", m.MessageID, err)
		}
		time.Sleep(100 * time.Millisecond)
		err = w.sender.SendMessage(w.ctx, m)
	}
	r := &request{id: m.MessageID, acct: a, op: op, pw: spec.New}
	a.expect = spec.New
	w.mu.Lock()
	w.reqs = append(w.reqs, r)
	w.mu.Unlock()
	return r
}

// ids lists the requests' ids.
func ids(rs []*request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.id
	}
	return out
}

// waitAnswered waits until each of rs has a result.
func (w *world) waitAnswered(rs []*request, within time.Duration) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, within)
	defer cancel()
	if err := w.sender.WaitAll(ctx, ids(rs)); err != nil {
		// Where a missing result may be: still queued as a request, on
		// the reply queue (sent, not yet collected), or never sent.
		reply := "?"
		if st, err := w.srv.Stats(replyName); err == nil {
			reply = fmt.Sprintf("%+v", st)
		}
		queue, expired := "?", ""
		if st, err := w.srv.Stats(queueName); err == nil {
			queue = fmt.Sprintf("%+v", st)
			if st.Expired > 0 {
				expired = fmt.Sprintf("; %d requests expired on the queue, which drops them unread", st.Expired)
			}
		}
		w.t.Fatalf("%v (queue: %s; reply queue: %s; collector errors: %v%s)", err, queue, reply, w.sender.Bad(), expired)
	}
}

// waitResults waits until n results have arrived in all.
func (w *world) waitResults(n int, within time.Duration) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := 0
		for _, reps := range w.sender.AllReplies() {
			got += len(reps)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("%d of %d results within %s (queue: %s)", got, n, within, w.queueState())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (w *world) queueState() string {
	st, err := w.srv.Stats(queueName)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v", st)
}

// ready asks an agent's /readyz; it returns the status code (0 when the
// agent does not answer).
func ready(ctx context.Context, a *testbed.Agent) int {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, "http://"+a.Files.HTTPAddr+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stopAgents stops the agents still running (SIGTERM), so their files are
// complete before they are checked.
func (w *world) stopAgents() {
	w.t.Helper()
	for _, a := range w.agents {
		if a.Running() {
			if err := a.Stop(30 * time.Second); err != nil {
				w.t.Errorf("stop %s: %v", a.Files.Name, err)
			}
		}
	}
}

// summary is what checkInvariants found, for the scenario's log line and
// its own assertions.
type summary struct {
	requests, answered, resent, unanswered int
	codes                                  map[string]int
	deadLettered                           []devbus.MessageInfo
}

// checkInvariants stops the agents and checks every invariant of the
// suite (see the package comment) over the requests sent. allowDead lists
// dead-letter reasons that valid requests may legitimately end with in
// this scenario (none, usually).
func (w *world) checkInvariants(allowDead ...string) summary {
	w.t.Helper()
	w.stopAgents()
	t := w.t
	s := summary{requests: len(w.reqs), codes: map[string]int{}}
	for _, err := range w.sender.Bad() {
		t.Errorf("a result that does not verify, or a receive failure: %v", err)
	}
	dead, err := w.srv.DeadLetters(queueName)
	if err != nil {
		t.Fatal(err)
	}
	s.deadLettered = dead
	deadByID := map[string]devbus.MessageInfo{}
	for _, d := range dead {
		deadByID[d.MessageID] = d
		if d.DeadLetterReason == "" || d.DeadLetterDescription == "" {
			t.Errorf("message %s dead-lettered without a reason and description: %q %q", d.MessageID, d.DeadLetterReason, d.DeadLetterDescription)
		}
		for _, l := range w.sh.dom.Secrets.ScanText("dead-letter description of "+d.MessageID, []byte(d.DeadLetterDescription)) {
			t.Errorf("%s", l)
		}
	}
	queued := map[string]bool{}
	if msgs, err := w.srv.Messages(queueName); err == nil {
		for _, m := range msgs {
			queued[m.MessageID] = true
		}
	}
	replies := w.sender.AllReplies()
	okBy := map[*account][]*request{}
	var order []*account
	for _, r := range w.reqs {
		if !slices.Contains(order, r.acct) {
			order = append(order, r.acct)
		}
		reps := replies[r.id]
		if d, ok := deadByID[r.id]; ok && !slices.Contains(allowDead, d.DeadLetterReason) {
			t.Errorf("valid request %s dead-lettered: %s: %s", r.id, d.DeadLetterReason, d.DeadLetterDescription)
		}
		if len(reps) == 0 {
			s.unanswered++
			_, dl := deadByID[r.id]
			if !r.mayGoUnanswered && !dl && !queued[r.id] {
				t.Errorf("request %s (%s of %s) has no result, is not dead-lettered and is not queued", r.id, r.op, r.acct.user.SAMAccountName)
			}
			continue
		}
		s.answered++
		s.resent += len(reps) - 1
		for _, rep := range reps[1:] {
			if !bytes.Equal(rep.Message.Body, reps[0].Message.Body) {
				t.Errorf("request %s answered twice differently: %s then %s", r.id, reps[0].Message.Body, rep.Message.Body)
			}
		}
		code := reps[0].Result.Code
		s.codes[code]++
		if code == wire.CodeOK {
			okBy[r.acct] = append(okBy[r.acct], r)
		}
	}
	for _, a := range order {
		v, err := pwdVersion(w.ctx, w.sh.dom, a.user.DN)
		if err != nil {
			t.Fatal(err)
		}
		oks := okBy[a]
		if got := int(v - a.v0); got != len(oks) {
			t.Errorf("%s: %d password writes took effect for %d requests answered ok (applied twice, or applied without an ok)", a.user.SAMAccountName, got, len(oks))
		}
		want := a.user.Password
		if len(oks) > 0 {
			want = oks[len(oks)-1].pw
		}
		if err := w.sh.dom.CheckPassword(w.ctx, a.user, want); err != nil {
			t.Errorf("%s does not have the password of the last request applied: %v", a.user.SAMAccountName, err)
		}
	}
	w.checkAudit(replies)
	if err := w.sh.dom.Secrets.ScanError(w.dir); err != nil {
		t.Error(err)
	}
	t.Logf("%d valid requests: %d answered (%v), %d results sent again after a fault, %d unanswered; %d dead letters",
		s.requests, s.answered, s.codes, s.resent, s.unanswered, len(dead))
	return s
}

// checkAudit verifies every agent's chain and finds each answered request
// in some agent's trail with its code, decided ("result") at most once.
func (w *world) checkAudit(replies map[string][]testbed.Reply) {
	t := w.t
	byID := map[string][]audit.Record{}
	for _, a := range w.agents {
		if _, err := os.Stat(a.Files.Audit); errors.Is(err, os.ErrNotExist) {
			continue
		}
		rotated, err := audit.RotatedFiles(a.Files.Audit)
		if err != nil {
			t.Fatal(err)
		}
		reps, err := audit.VerifySet(append(rotated, a.Files.Audit), audit.Genesis)
		if err != nil {
			t.Fatal(err)
		}
		for _, rep := range reps {
			if !rep.OK() {
				t.Errorf("audit chain of %s: %s: %+v", a.Files.Name, rep.Path, rep.Report)
			}
		}
		recs, err := a.Audit()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			byID[r.RequestID] = append(byID[r.RequestID], r)
		}
	}
	for _, r := range w.reqs {
		reps := replies[r.id]
		if len(reps) == 0 {
			continue
		}
		code := reps[0].Result.Code
		found, decided := false, 0
		for _, rec := range byID[r.id] {
			if rec.Code == code && (rec.Event == audit.EventResult || rec.Event == audit.EventReplayed || rec.Event == audit.EventDeadLettered) {
				found = true
			}
			if rec.Event == audit.EventResult {
				decided++
			}
		}
		if !found {
			t.Errorf("request %s answered %s has no audit record with that code: %+v", r.id, code, byID[r.id])
		}
		if decided > 1 {
			t.Errorf("request %s decided %d times in the audit trails: %+v", r.id, decided, byID[r.id])
		}
	}
}

// describe names a request for failure messages.
func (r *request) String() string {
	return fmt.Sprintf("%s %s of %s", r.id, r.op, r.acct.user.SAMAccountName)
}

// contains reports whether s contains any of subs.
func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

// logged reports whether the agent's log holds a line containing any of
// subs: proof that a fault reached it.
func logged(t *testing.T, a *testbed.Agent, subs ...string) bool {
	t.Helper()
	lines, err := testbed.ReadLog(a.Files.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines {
		for _, v := range l.Fields {
			if s, ok := v.(string); ok && containsAny(s, subs...) {
				return true
			}
		}
	}
	return false
}

// restart starts a killed agent again and waits until it runs (a SIGTERM
// before the agent has installed its handlers would end it abruptly).
func (w *world) restart(a *testbed.Agent) {
	w.t.Helper()
	count := func() int {
		lines, _ := testbed.ReadLog(a.Files.Log)
		n := 0
		for _, l := range lines {
			if l.Msg == "wbagent is running" {
				n++
			}
		}
		return n
	}
	before := count()
	if err := a.Restart(); err != nil {
		w.t.Fatal(err)
	}
	for count() == before {
		if !a.Running() || w.ctx.Err() != nil {
			w.t.Fatalf("agent %s did not start again (log: %s)", a.Files.Name, a.Files.Stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
