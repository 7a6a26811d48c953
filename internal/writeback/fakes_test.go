package writeback

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"wbagent/internal/audit"
	"wbagent/internal/ledger"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// fakeClock only moves when a test or a Sleep moves it, so retry waits take
// no real time and their lengths can be checked.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept = append(c.slept, d)
	return nil
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func (c *fakeClock) totalSlept() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var s time.Duration
	for _, d := range c.slept {
		s += d
	}
	return s
}

// step is one scripted directory answer; writes says the DC took the
// password before answering (pwdLastSet moves), whatever the answer says.
type step struct {
	Applied
	writes bool
}

// fakeDir is a directory that answers from a script (the last step repeats)
// and keeps pwdLastSet like a DC would.
type fakeDir struct {
	mu         sync.Mutex
	clock      *fakeClock
	script     []step
	calls      []Change
	passwords  []string // New of each call, as seen during the call
	pwdLastSet time.Time
	pwdErrs    int // PwdLastSet fails this many times first
	pwdCalls   int
	// onApply runs at the start of each Apply (inspection, blocking).
	onApply func(ctx context.Context)
}

func (d *fakeDir) Apply(ctx context.Context, c Change) Applied {
	if d.onApply != nil {
		d.onApply(ctx)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	n := len(d.calls)
	d.calls = append(d.calls, c)
	d.passwords = append(d.passwords, c.New.Reveal())
	s := step{Applied: Applied{Code: wire.CodeOK}, writes: c.Op != wire.OpUnlock}
	if len(d.script) > 0 {
		s = d.script[min(n, len(d.script)-1)]
	}
	if s.writes {
		d.pwdLastSet = d.clock.Now().Add(time.Millisecond)
	}
	if s.DN == "" && !s.Transient {
		s.DN, s.ObjectGUID, s.DC = "CN=Alice,OU=Staff,DC=corp,DC=example,DC=test", "3ee39ba2-5a35-4c3e-944a-aeb0a79c01d4", "dc1.corp.example.test"
	}
	return s.Applied
}

func (d *fakeDir) PwdLastSet(ctx context.Context, t protocol.Target) (time.Time, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pwdCalls++
	if d.pwdErrs > 0 {
		d.pwdErrs--
		return time.Time{}, errors.New("no domain controller reachable")
	}
	return d.pwdLastSet, nil
}

func (d *fakeDir) applyCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.calls)
}

// fakeAudit keeps records; it fails the next fail writes.
type fakeAudit struct {
	mu      sync.Mutex
	records []audit.Record
	fail    int
}

func (a *fakeAudit) Record(_ context.Context, r audit.Record) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.fail > 0 {
		a.fail--
		return errors.New("disk full")
	}
	a.records = append(a.records, r)
	return nil
}

func (a *fakeAudit) Contains(id, event string, since time.Time) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.records {
		if r.RequestID == id && r.Event == event && !r.Time.Before(since) {
			return true, nil
		}
	}
	return false, nil
}

func (a *fakeAudit) last(t *testing.T) audit.Record {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.records) == 0 {
		t.Fatal("no audit record written")
	}
	return a.records[len(a.records)-1]
}

// fakeSession is a session state store; it fails the next getErrs reads
// and setErrs writes, and remembers every state written.
type fakeSession struct {
	mu      sync.Mutex
	state   []byte
	getErrs int
	setErrs int
	writes  [][]byte
}

func (s *fakeSession) Get(context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.getErrs > 0 {
		s.getErrs--
		return nil, errors.New("link detached")
	}
	return append([]byte(nil), s.state...), nil
}

func (s *fakeSession) Set(_ context.Context, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.setErrs > 0 {
		s.setErrs--
		return errors.New("link detached")
	}
	s.state = append([]byte(nil), b...)
	s.writes = append(s.writes, s.state)
	return nil
}

// testQueue is the queue name the fixture's handler binds session state to.
const testQueue = "wbagent-requests"

// decoded returns the state the handler wrote for m's session; every
// record must authenticate.
func (s *fakeSession) decoded(t *testing.T, seal *ledger.SessionSeal, m protocol.Message) *ledger.SessionState {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, refused := seal.Decode(s.state, ledger.SessionBinding{Queue: testQueue, SessionID: m.SessionID})
	if len(refused) != 0 {
		t.Fatalf("the handler's own session state does not authenticate: %v", refused)
	}
	return ss
}

// sealed encodes ss as the fixture's agents would for m's session.
func (f *fixture) sealed(ss *ledger.SessionState, m protocol.Message) []byte {
	f.t.Helper()
	b, err := f.seal.Encode(ss, ledger.SessionBinding{Queue: testQueue, SessionID: m.SessionID})
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// fixture is a handler wired to fakes, a real ledger and real protocol keys.
type fixture struct {
	t        testing.TB
	clock    *fakeClock
	dir      *fakeDir
	led      *ledger.Store
	aud      *fakeAudit
	h        *Handler
	logs     *observer.ObservedLogs
	sender   *protocol.SigningKey
	agentDec *protocol.DecryptionKey
	agentSig *protocol.SigningKey
	seal     *ledger.SessionSeal
	n        int
}

var t0 = time.Date(2026, 11, 24, 18, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &fakeClock{now: t0}, aud: &fakeAudit{}}
	f.dir = &fakeDir{clock: f.clock, pwdLastSet: t0.Add(-24 * time.Hour)}
	var err error
	if f.agentDec, err = protocol.GenerateDecryptionKey(protocol.SuiteX25519); err != nil {
		t.Fatal(err)
	}
	if f.sender, err = protocol.GenerateSigningKey(); err != nil {
		t.Fatal(err)
	}
	if f.agentSig, err = protocol.GenerateSigningKey(); err != nil {
		t.Fatal(err)
	}
	opener, err := protocol.NewOpener([]*protocol.DecryptionKey{f.agentDec}, []ed25519.PublicKey{f.sender.Public()}, protocol.Limits{MaxClockSkew: 2 * time.Minute, MaxLifetime: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f.led, err = ledger.Open(t.TempDir(), ledger.Options{Now: f.clock.Now, LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.led.Close() })
	if f.seal, err = NewSessionSeal([]*protocol.DecryptionKey{f.agentDec}); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	f.logs = logs
	f.h, err = New(Options{
		Agent: "dc-test-1", Opener: opener, Directory: f.dir, Ledger: f.led, Audit: f.aud,
		SigningKey: f.agentSig, Seal: f.seal, Queue: testQueue, Clock: f.clock, Jitter: func() float64 { return 0.5 },
		RetryBudget: 45 * time.Second, BackoffInitial: 500 * time.Millisecond, BackoffMax: 8 * time.Second,
		PostWriteTimeout: 10 * time.Second, Logger: zap.New(core),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// request builds a signed, sealed request; edit adjusts the spec first.
func (f *fixture) request(edit func(*protocol.RequestSpec)) protocol.Message {
	f.t.Helper()
	f.n++
	spec := protocol.RequestSpec{
		Op:        wire.OpReset,
		Target:    protocol.Target{UserPrincipalName: "alice@corp.example.test"},
		Actor:     protocol.Actor{ID: "helpdesk@contoso.example", Kind: protocol.ActorAdmin, IP: "203.0.113.7"},
		IssuedAt:  f.clock.Now(),
		ExpiresAt: f.clock.Now().Add(5 * time.Minute),
		New:       secret.FromString(newPassword(f.n)),
		ReplyTo:   "replies",
	}
	if edit != nil {
		edit(&spec)
	}
	m, err := protocol.BuildRequest(f.sender, f.agentDec.Public(), spec)
	if err != nil {
		f.t.Fatalf("build request: %v", err)
	}
	return m
}

func newPassword(n int) string { return "Tr0ub4dor&3-" + string(rune('a'+n%26)) + "-secretpw" }

func (f *fixture) handle(m protocol.Message, s SessionState) Outcome {
	return f.h.Handle(context.Background(), Delivery{Message: m, DeliveryCount: 1, Session: s})
}

// result verifies and parses out's reply.
func (f *fixture) result(out Outcome) *protocol.Result {
	f.t.Helper()
	if out.Reply == nil {
		f.t.Fatalf("no reply in outcome %+v", out)
	}
	r, err := protocol.VerifyResult(f.agentSig.Public(), *out.Reply)
	if err != nil {
		f.t.Fatalf("verify result: %v", err)
	}
	return r
}
