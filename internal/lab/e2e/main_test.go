package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// The DC and the wbagent binary every test shares.
var (
	dom *testbed.Domain
	bin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	os.Exit(setupAndRun(m))
}

func setupAndRun(m *testing.M) int {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "wbagent-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if bin, err = testbed.BuildAgent(ctx, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if dom, err = testbed.StartDomain(ctx, testbed.DomainOptions{}); err != nil {
		fmt.Fprintf(os.Stderr, "end-to-end tests need a Samba AD DC: %v (run `make deps` to install Samba)\n", err)
		return 1
	}
	defer dom.Stop()
	return m.Run()
}

// needDC skips under -short.
func needDC(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: needs a Samba AD DC, devbus and agent processes")
	}
}

// Queue names every run has.
const (
	requestQueue = "requests"
	replyQueue   = "replies"
	// replySessions is a session reply queue, for `wbagent send --session`;
	// replyCLI a plain one for `wbagent send` (the sender's collector reads
	// replyQueue and would take the CLI's results).
	replySessions = "replies-s"
	replyCLI      = "replies-cli"
)

// run is one test's installation: its folder, devbus process, keys,
// sender and agents. Cleanup stops everything and fails the test if a
// password used anywhere reached a file in the folder or a dead-letter
// description.
type run struct {
	t        *testing.T
	ctx      context.Context
	dir      string
	sessions bool
	bus      *testbed.Bus
	keys     *testbed.Keys
	send     *testbed.Sender
	agents   []*testbed.Agent
}

// newRun starts devbus (as a process) with the request queue (sessions or
// not, 5 s locks), the reply queues and extra, and a sender.
func newRun(t *testing.T, sessions bool, extra ...devbus.QueueConfig) *run {
	t.Helper()
	needDC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r := &run{t: t, ctx: ctx, dir: t.TempDir(), sessions: sessions}
	queues := append([]devbus.QueueConfig{
		{Name: requestQueue, RequiresSession: sessions, LockDuration: 5 * time.Second},
		{Name: replyQueue},
		{Name: replySessions, RequiresSession: true},
		{Name: replyCLI},
	}, extra...)
	var err error
	if r.keys, err = testbed.NewKeys(filepath.Join(r.dir, "keys")); err != nil {
		t.Fatal(err)
	}
	if r.bus, err = testbed.StartBus(ctx, testbed.BusOptions{Binary: bin, Dir: r.dir, Queues: queues}); err != nil {
		t.Fatal(err)
	}
	if r.send, err = testbed.NewSender(r.bus, r.keys, testbed.SenderOptions{Queue: requestQueue, Sessions: sessions,
		ReplyQueue: replyQueue, Secrets: dom.Secrets}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.close)
	return r
}

// agent starts an agent process on the request queue; edit adjusts its
// config.
func (r *run) agent(name string, edit func(*testbed.AgentConfig)) *testbed.Agent {
	r.t.Helper()
	c := testbed.AgentConfig{Dir: filepath.Join(r.dir, name), Name: name, Queue: requestQueue, Sessions: r.sessions, Keys: r.keys}
	if edit != nil {
		edit(&c)
	}
	files, err := testbed.WriteAgentConfig(c, dom)
	if err != nil {
		r.t.Fatal(err)
	}
	a, err := testbed.StartAgent(bin, files, testbed.AgentEnv(r.bus, dom))
	if err != nil {
		r.t.Fatal(err)
	}
	r.agents = append(r.agents, a)
	if err := a.WaitRunning(r.ctx); err != nil {
		r.t.Fatal(err)
	}
	return a
}

// close stops the sender, the agents and the bus, then scans the run's
// folder and the dead-letter descriptions for every password used.
func (r *run) close() {
	t := r.t
	dead, err := r.send.DeadLetters(context.Background(), 200*time.Millisecond)
	if err != nil {
		t.Errorf("read dead letters: %v", err)
	}
	for _, d := range dead {
		for _, l := range dom.Secrets.ScanText("dead-letter description of "+d.MessageID, []byte(d.Reason+" "+d.Description)) {
			t.Errorf("password leak: %s", l)
		}
	}
	if err := r.send.Close(); err != nil {
		t.Logf("close sender: %v", err)
	}
	for _, a := range r.agents {
		if a.Running() {
			if err := a.Stop(30 * time.Second); err != nil {
				t.Errorf("stop %s: %v", a.Files.Name, err)
			}
		}
	}
	if err := r.bus.Close(); err != nil {
		t.Errorf("stop devbus: %v", err)
	}
	if err := dom.Secrets.ScanError(r.dir); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		for _, a := range r.agents {
			if b, err := os.ReadFile(a.Files.Stderr); err == nil {
				t.Logf("%s's log (last 4 KB):\n%s", a.Files.Name, tail(string(b), 4096))
			}
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// user creates a fresh account in OU=Staff (or ou) for this test.
func (r *run) user(prefix string, ou ...string) *testbed.User {
	r.t.Helper()
	where := dom.Staff
	if len(ou) > 0 {
		where = ou[0]
	}
	u, err := dom.AddUser(r.ctx, dom.UniqueName(prefix), where)
	if err != nil {
		r.t.Fatal(err)
	}
	return u
}

// spec starts a request for op on target, with newPw and oldPw.
func (r *run) spec(op wire.Op, target protocol.Target, newPw, oldPw *secret.Secret) protocol.RequestSpec {
	s := r.send.Spec(op, target)
	s.New, s.Old = newPw, oldPw
	return s
}

// runCLI runs the wbagent binary with args and returns its combined output.
func runCLI(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out), err
}
