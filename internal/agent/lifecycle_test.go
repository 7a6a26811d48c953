package agent

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
	"wbagent/internal/writeback"
)

// lifecycleBed is an agent on a real devbus with requests sent through
// the SDK; its directory is the config's unless the test replaces it.
type lifecycleBed struct {
	t     *testing.T
	ctx   context.Context
	cfg   *config.Config
	srv   *devbus.Server
	cloud *cloud
}

func newLifecycleBed(t *testing.T, edit func(*testbed.PipelineConfig)) *lifecycleBed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	srv := testbed.StartDevbus(ctx, t, devbus.Options{Queues: []devbus.QueueConfig{
		{Name: "requests", RequiresSession: true, LockDuration: 30 * time.Second}, {Name: "replies"},
	}})
	pc := testbed.PipelineConfig{
		Dir: t.TempDir(), Queue: "requests", Sessions: true,
		LDAPSURL: "ldaps://127.0.0.1:1", CAFile: "/nonexistent-ca.pem", BindUser: "svc@corp.example.test", BindPass: "bind-Passw0rd",
		BaseDN: "DC=corp,DC=example,DC=test", Realm: "corp.example.test", NetBIOS: "CORP", IncludeOU: "OU=Staff,DC=corp,DC=example,DC=test",
	}
	if edit != nil {
		edit(&pc)
	}
	cfg := testbed.WritePipelineConfig(t, pc)
	return &lifecycleBed{t: t, ctx: ctx, cfg: cfg, srv: srv, cloud: newCloud(ctx, t, srv, pc.Dir)}
}

func (b *lifecycleBed) deps(dir writeback.Directory) Deps {
	d := testEnv(map[string]string{"TEST_SB_CONNECTION": b.srv.ConnectionString().Reveal()})
	d.Directory = dir
	return d
}

// start builds and starts an agent with d; the test stops it.
func (b *lifecycleBed) start(d Deps) *Agent {
	b.t.Helper()
	a, err := New(b.ctx, b.cfg, d)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := a.Start(b.ctx); err != nil {
		b.t.Fatal(err)
	}
	return a
}

// sendReset puts a signed reset for a made-up account on the queue and
// returns its message id.
func (b *lifecycleBed) sendReset() string {
	b.t.Helper()
	m := b.cloud.request(wire.OpReset, protocol.Target{UserPrincipalName: "ada@corp.example.test"},
		protocol.Actor{ID: "helpdesk@corp.example.test", Kind: protocol.ActorAdmin}, "Lifecycle-Passw0rd-1", "")
	b.cloud.send(m)
	return m.MessageID
}

// heldDirectory holds every write until released, then answers ok; it
// records whether the write's context had ended by then.
type heldDirectory struct {
	entered  chan struct{}
	release  chan struct{}
	finished chan error
}

func newHeldDirectory() *heldDirectory {
	return &heldDirectory{entered: make(chan struct{}, 16), release: make(chan struct{}), finished: make(chan error, 16)}
}

func (d *heldDirectory) Apply(ctx context.Context, _ writeback.Change) writeback.Applied {
	d.entered <- struct{}{}
	select {
	case <-d.release:
		d.finished <- ctx.Err()
		return writeback.Applied{Code: wire.CodeOK, DN: "CN=ada,OU=Staff,DC=corp,DC=example,DC=test", DC: "held"}
	case <-ctx.Done():
		d.finished <- ctx.Err()
		// What the real directory reports when a write is abandoned
		// before it was sent.
		return writeback.Applied{Code: wire.CodeDirectoryUnavailable, Transient: true, Err: ctx.Err()}
	}
}

func (d *heldDirectory) PwdLastSet(context.Context, protocol.Target) (time.Time, error) {
	return time.Time{}, nil
}

// startHeld starts an agent whose directory holds every write, sends a
// reset and waits until its write is in flight, then reports a fatal
// error as a dying bus would.
func (b *lifecycleBed) startHeld() (*Agent, *heldDirectory, string) {
	b.t.Helper()
	held := newHeldDirectory()
	d := b.deps(held)
	d.Logger = zaptest.NewLogger(b.t)
	a := b.start(d)
	id := b.sendReset()
	waitFor(b.t, "the write", held.entered)
	a.fail(errors.New("service bus: the namespace is gone"))
	select {
	case <-a.Fatal():
	case <-time.After(10 * time.Second):
		b.t.Fatal("the fatal error was not delivered")
	}
	return a, held, id
}

// stopIn runs the agent's stop with the given grace period in the
// background and delivers its error.
func stopIn(a *Agent, grace time.Duration) <-chan error {
	stopped := make(chan error, 1)
	go func() {
		sctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		stopped <- a.Stop(sctx)
	}()
	return stopped
}

func waitFor(t *testing.T, what string, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not happen", what)
	}
}

// A fatal error while a write is in flight ends in the ordered stop: the
// write is finished within the grace period, its result is sent and the
// message completed, never cut off midway.
func TestFatalErrorWhileWriteInFlightFinishesIt(t *testing.T) {
	b := newLifecycleBed(t, nil)
	a, held, id := b.startHeld()
	stopped := stopIn(a, time.Minute)
	select {
	case err := <-stopped:
		t.Fatalf("stop returned (%v) while a write was in flight and the grace period ran", err)
	default:
	}
	close(held.release)
	if err := <-held.finished; err != nil {
		t.Fatalf("the in-flight write was cut off: %v", err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("stop: %v", err)
	}
	if r := b.cloud.result(id); r.Code != wire.CodeOK {
		t.Fatalf("result %+v, want ok for %s", r, id)
	}
	// The message is completed, or (when the stop's link teardown beats
	// the settlement) left for redelivery, which the ledger answers with
	// this same result; it is never dead-lettered.
	st, err := b.srv.Stats("requests")
	if err != nil {
		t.Fatal(err)
	}
	if st.DeadLettered != 0 || st.Active > 1 {
		t.Fatalf("queue %+v after the write finished", st)
	}
}

// When the grace period ends first, the in-flight write is abandoned: the
// message goes back to the queue for redelivery and no result claims
// anything.
func TestFatalErrorAbandonsWriteAfterGrace(t *testing.T) {
	b := newLifecycleBed(t, nil)
	a, held, _ := b.startHeld()
	if err := <-stopIn(a, 100*time.Millisecond); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := <-held.finished; err == nil {
		t.Fatal("the write finished although the grace period was over")
	}
	st, err := b.srv.Stats("requests")
	if err != nil {
		t.Fatal(err)
	}
	if st.Active != 1 || st.DeadLettered != 0 {
		t.Fatalf("queue %+v: want the message back for redelivery", st)
	}
}

// A stop that arrives while the agent starts waits for the start and
// stops everything it began: the HTTP port is closed again and the
// ledger and audit locks are released, so a new agent can take them.
func TestStopDuringStart(t *testing.T) {
	b := newLifecycleBed(t, nil)
	ctx := b.ctx
	b.cfg.HTTP.Listen = "127.0.0.1:0"
	for i := 0; i < 10; i++ {
		a, err := New(ctx, b.cfg, b.deps(nil))
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		started := make(chan error, 1)
		go func() { started <- a.Start(ctx) }()
		if err := a.Stop(ctx); err != nil {
			t.Fatalf("round %d: stop: %v", i, err)
		}
		if err := <-started; err != nil && !errors.Is(err, ErrStopped) {
			t.Fatalf("round %d: start: %v", i, err)
		}
		if addr := a.HTTPAddr(); addr != "" {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				t.Fatalf("round %d: HTTP still listens on %s after stop", i, addr)
			}
		}
		if err := a.Start(ctx); !errors.Is(err, ErrStopped) {
			t.Fatalf("round %d: start after stop: %v", i, err)
		}
	}
}

// A stop while the DC hangs (accepts connections and never answers) ends
// within the grace period plus the bus's bounded settle: the write is
// abandoned for redelivery, not waited on for ever.
func TestStopWhileDCHangs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 64)
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	b := newLifecycleBed(t, func(pc *testbed.PipelineConfig) {
		pc.LDAPSURL = "ldaps://" + ln.Addr().String()
		pc.CAFile = ""
	})
	a := b.start(b.deps(nil))
	b.sendReset()
	waitFor(t, "a connection to the hanging DC", accepted)
	stopped := stopIn(a, time.Second)
	var err2 error
	select {
	case err2 = <-stopped:
	case <-time.After(2 * time.Minute):
		t.Fatal("stop did not return while the DC hangs")
	}
	if err2 != nil {
		t.Fatalf("stop: %v", err2)
	}
	st, err := b.srv.Stats("requests")
	if err != nil {
		t.Fatal(err)
	}
	if st.DeadLettered != 0 || st.Active+b.srv.Depth("replies") != 1 {
		t.Fatalf("queue %+v: the request was neither kept for redelivery nor answered", st)
	}
}
