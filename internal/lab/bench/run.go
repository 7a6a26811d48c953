package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"wbagent/internal/config"
	"wbagent/internal/devbus"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/secret"
	"wbagent/internal/wire"
)

// Options configure Run.
type Options struct {
	// Dir is the working folder (keys, configs, agent state, logs); a new
	// temporary folder, removed afterwards, when empty.
	Dir string
	// Log receives progress lines; nil discards them.
	Log io.Writer
	// Quick shortens every run (a smoke test of the benchmark itself).
	Quick bool
	// ProfileDir, when set, receives a CPU and a heap profile of every
	// capacity agent (capacity-<queue>.cpu.pprof, .mem.pprof), for
	// `go tool pprof`.
	ProfileDir string
	// Only, when not empty, runs just the named steps: e2e (with the
	// directory ceiling), capacity, growth, drain, transport.
	Only []string
}

// sizes are the lengths of the measured runs.
type sizes struct {
	// e2e is the length of each directory-ceiling and end-to-end run,
	// repeated rounds times, alternating.
	e2e    time.Duration
	rounds int
	growth time.Duration
	// capacity and drain are backlog sizes.
	capacity, drain int
}

// bench is one benchmark run's shared state.
type bench struct {
	o   Options
	s   sizes
	dir string
	bin string
	dom *testbed.Domain
	bus *testbed.Bus
	// busPid is the `wbagent devbus` process.
	busPid int
	xwing  *testbed.Keys
	x255   *testbed.Keys
	// accounts are real directory users, one per worker.
	accounts []*Account
	rep      *Report
}

// The agent settings the runs use where they do not say otherwise are the
// config defaults; workers is the higher concurrency of the end-to-end runs.
const (
	benchMaxConcurrent = config.DefaultMaxConcurrent
	benchIdle          = config.DefaultSessionIdleTimeout
	workers            = 4
)

// Run provisions a Samba AD DC and a `wbagent devbus` process on loopback,
// measures the directory ceiling, the end-to-end path, the agent's own
// capacity and how its cost grows, and returns the report.
func Run(ctx context.Context, o Options) (*Report, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	b := &bench{o: o, s: sizes{e2e: 3 * time.Second, rounds: 3, growth: 4 * time.Second, capacity: 3000, drain: 10000}}
	if o.Quick {
		b.s = sizes{e2e: time.Second, rounds: 1, growth: time.Second, capacity: 300, drain: 1000}
	}
	b.dir = o.Dir
	if b.dir == "" {
		d, err := os.MkdirTemp("", "wbbench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer os.RemoveAll(d)
		b.dir = d
	}
	start := time.Now()
	b.rep = &Report{Machine: DescribeMachine(ctx), Started: start.UTC()}
	if err := b.setUp(ctx); err != nil {
		b.tearDown()
		return nil, err
	}
	defer b.tearDown()
	steps := []struct {
		name string
		f    func(context.Context) error
	}{
		{"e2e", b.endToEnd},
		{"capacity", b.capacity},
		{"growth", b.growth},
		{"drain", b.drain},
		{"transport", b.transport},
	}
	for _, st := range steps {
		if len(o.Only) > 0 && !slices.Contains(o.Only, st.name) {
			continue
		}
		b.logf("== %s", st.name)
		if err := st.f(ctx); err != nil {
			return b.rep, fmt.Errorf("bench %s: %w", st.name, err)
		}
	}
	b.rep.Seconds = round(time.Since(start).Seconds(), 1)
	b.rep.Targets = targets(b.rep)
	return b.rep, nil
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.o.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// queues lists every queue the runs use; each has its own reply queue so
// that no run reads another's results.
func queues() []devbus.QueueConfig {
	var qs []devbus.QueueConfig
	add := func(name string, sessions bool) {
		qs = append(qs, devbus.QueueConfig{Name: name, RequiresSession: sessions}, devbus.QueueConfig{Name: name + "-replies"})
	}
	add("e2e-plain", false)
	add("e2e-sessions", true)
	for _, s := range []string{"x-wing", "x25519"} {
		add("cap-plain-"+s, false)
		add("cap-plain32-"+s, false)
		add("cap-sessions-"+s, true)
		add("cap-sessions32-"+s, true)
	}
	for _, n := range []int{1, 8, 64} {
		add(fmt.Sprintf("grow-%d", n), true)
	}
	add("drain", false)
	return append(qs, transportQueues(3)...)
}

func (b *bench) setUp(ctx context.Context) error {
	b.logf("building wbagent, starting Samba AD DC and wbagent devbus")
	var err error
	if b.bin, err = testbed.BuildAgent(ctx, b.dir); err != nil {
		return err
	}
	if b.dom, err = testbed.StartDomain(ctx, testbed.DomainOptions{}); err != nil {
		return err
	}
	users, err := b.dom.AddUsers(ctx, "bench", b.dom.Staff, workers)
	if err != nil {
		return fmt.Errorf("create bench accounts: %w", err)
	}
	for _, u := range users {
		b.accounts = append(b.accounts, &Account{User: u, Password: u.Password})
	}
	if b.xwing, err = testbed.NewKeys(filepath.Join(b.dir, "keys-xwing"), protocol.SuiteXWing); err != nil {
		return err
	}
	if b.x255, err = testbed.NewKeys(filepath.Join(b.dir, "keys-x25519"), protocol.SuiteX25519); err != nil {
		return err
	}
	busDir := filepath.Join(b.dir, "devbus")
	if err := os.MkdirAll(busDir, 0o700); err != nil {
		return err
	}
	if b.bus, err = testbed.StartBus(ctx, testbed.BusOptions{Queues: queues(), Binary: b.bin, Dir: busDir, TLS: true, WebSockets: true}); err != nil {
		return err
	}
	b.busPid, err = FindProcess(b.bin, "devbus")
	return err
}

func (b *bench) tearDown() {
	if b.bus != nil {
		_ = b.bus.Close()
	}
	if b.dom != nil {
		_ = b.dom.Stop()
	}
}

// cost is the agent's CPU per request and peak RSS between two samples.
func cost(before, after ProcSample, requests int) *AgentCost {
	c := &AgentCost{PeakRSSMB: round(float64(after.PeakRSS)/(1<<20), 1)}
	if requests > 0 {
		c.CPUPerRequestUs = round(float64((after.CPU-before.CPU).Microseconds())/float64(requests), 0)
	}
	return c
}

// capacityAgent configures and starts a capacity agent on queue.
func (b *bench) capacityAgent(ctx context.Context, queue string, keys *testbed.Keys, sessions bool, maxConc int, idle time.Duration) (*Process, error) {
	return b.capacityAgentOver(ctx, queue, keys, sessions, maxConc, idle, nil)
}

// capacityAgentOver is capacityAgent on transport t (nil: plain).
func (b *bench) capacityAgentOver(ctx context.Context, queue string, keys *testbed.Keys, sessions bool, maxConc int, idle time.Duration, t *agentTransport) (*Process, error) {
	ac := testbed.AgentConfig{Dir: filepath.Join(b.dir, queue), Name: "bench-" + queue,
		Queue: queue, Sessions: sessions, MaxConcurrent: maxConc, SessionIdleTimeout: idle, Keys: keys}
	env := testbed.AgentEnv(b.bus, b.dom)
	if t != nil {
		// The last entry of a name wins in the child's environment.
		ac.ServiceBusExtra, env = t.extra, append(env, t.env)
	}
	files, err := testbed.WriteAgentConfig(ac, b.dom)
	if err != nil {
		return nil, err
	}
	profile := ""
	if b.o.ProfileDir != "" {
		profile = filepath.Join(b.o.ProfileDir, "capacity-"+queue)
	}
	return StartCapacityAgent(ctx, files, env, profile)
}

// synthetic builds n reset requests for distinct made-up accounts (the
// instant directory resolves nothing), so that on a session queue each
// is its own session, as a backlog of different users' requests is.
func synthetic(c *Client, run string, n int) ([]protocol.Message, error) {
	msgs := make([]protocol.Message, n)
	pw := testbed.NewPassword()
	now := time.Now()
	for i := range msgs {
		spec := protocol.RequestSpec{Op: wire.OpReset,
			Target:   protocol.Target{UserPrincipalName: fmt.Sprintf("%s-%d@bench.test", run, i)},
			Actor:    protocol.Actor{ID: "bench@wbagent.test", Kind: protocol.ActorAdmin},
			IssuedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
		spec.New = secretFrom(pw)
		m, err := c.Build(spec)
		spec.New.Destroy()
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// backlog fills queue with n requests, then starts a capacity agent and
// measures how fast it drains them: requests/s from the first result to
// the last, and the agent's CPU over that interval.
func (b *bench) backlog(ctx context.Context, queue string, keys *testbed.Keys, sessions bool, maxConc int, idle time.Duration, n int) (Row, error) {
	return b.backlogOver(ctx, queue, keys, sessions, maxConc, idle, n, nil)
}

// backlogOver is backlog with the capacity agent on transport t; nil is
// the plain connection string.
func (b *bench) backlogOver(ctx context.Context, queue string, keys *testbed.Keys, sessions bool, maxConc int, idle time.Duration, n int, t *agentTransport) (Row, error) {
	c, err := NewClient(b.bus, keys, queue, sessions, queue+"-replies")
	if err != nil {
		return Row{}, err
	}
	defer c.Close()
	msgs, err := synthetic(c, queue, n)
	if err != nil {
		return Row{}, err
	}
	if err := c.SendAll(ctx, msgs); err != nil {
		return Row{}, err
	}
	start := time.Now()
	p, err := b.capacityAgentOver(ctx, queue, keys, sessions, maxConc, idle, t)
	if err != nil {
		return Row{}, err
	}
	defer p.Stop(10 * time.Second)
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	first, err := c.WaitCount(wctx, 1)
	if err != nil {
		return Row{}, err
	}
	s0, bus0, err := b.readAgentAndBus(p.Pid)
	if err != nil {
		return Row{}, err
	}
	all, err := c.WaitCount(wctx, n)
	if err != nil {
		return Row{}, err
	}
	s1, bus1, err := b.readAgentAndBus(p.Pid)
	if err != nil {
		return Row{}, err
	}
	last := all[len(all)-1].At
	codes, err := c.Verify(all)
	if err != nil {
		return Row{}, err
	}
	if codes[wire.CodeOK] != n {
		return Row{}, fmt.Errorf("backlog on %s: result codes %v, want %d ok", queue, codes, n)
	}
	span := last.Sub(first[0].At)
	settings := fmt.Sprintf("maxConcurrent %d", maxConc)
	if sessions {
		settings += fmt.Sprintf(", sessionIdleTimeout %s", idle)
	}
	return Row{Figures: Figures{Requests: n, Seconds: round(span.Seconds(), 2), PerSecond: perSecond(n-1, span)},
		Agent: cost(s0, s1, n-1), BrokerCPUPerRequestUs: cost(bus0, bus1, n-1).CPUPerRequestUs, DrainSeconds: round(last.Sub(start).Seconds(), 2), Settings: settings,
		Components: p.Components}, nil
}

// readAgentAndBus samples the agent process and the broker process.
func (b *bench) readAgentAndBus(agent int) (ProcSample, ProcSample, error) {
	a, err := ReadProc(agent)
	if err != nil {
		return a, ProcSample{}, err
	}
	bus, err := ReadProc(b.busPid)
	return a, bus, err
}

// capacity measures the agent alone with both suites on plain and
// session queues.
func (b *bench) capacity(ctx context.Context) error {
	for _, k := range []*testbed.Keys{b.xwing, b.x255} {
		suite := string(k.Agent.Suite())
		runs := []struct {
			queue    string
			sessions bool
			maxConc  int
			idle     time.Duration
			n        int
		}{
			{"cap-plain-" + suite, false, benchMaxConcurrent, benchIdle, b.s.capacity},
			{"cap-plain32-" + suite, false, 32, benchIdle, b.s.capacity},
			{"cap-sessions-" + suite, true, benchMaxConcurrent, benchIdle, b.s.capacity},
			{"cap-sessions32-" + suite, true, 32, benchIdle, b.s.capacity},
		}
		for _, r := range runs {
			row, err := b.backlog(ctx, r.queue, k, r.sessions, r.maxConc, r.idle, r.n)
			if err != nil {
				return err
			}
			mode := "plain"
			if r.sessions {
				mode = "sessions"
			}
			row.Name = fmt.Sprintf("%s %s", suite, mode)
			b.logf("%s (%s): %.0f/s, %.0f µs CPU/req, peak RSS %.1f MiB", row.Name, row.Settings, row.PerSecond, row.Agent.CPUPerRequestUs, row.Agent.PeakRSSMB)
			b.rep.Capacity = append(b.rep.Capacity, row)
			if len(b.rep.Capacity) == 1 {
				b.rep.Notes = append(b.rep.Notes, "Agent capacity runs the pipeline `wbagent run` runs, built by the same constructor (internal/agent.New), with an instant directory: "+row.Components+".")
			}
		}
	}
	return nil
}

// growth runs 1, 8 and 64 concurrent sessions, each a closed loop on its
// own account, against a fresh capacity agent holding up to 64 sessions.
func (b *bench) growth(ctx context.Context) error {
	for _, n := range []int{1, 8, 64} {
		queue := fmt.Sprintf("grow-%d", n)
		c, err := NewClient(b.bus, b.xwing, queue, true, queue+"-replies")
		if err != nil {
			return err
		}
		err = func() error {
			defer c.Close()
			p, err := b.capacityAgent(ctx, queue, b.xwing, true, 64, benchIdle)
			if err != nil {
				return err
			}
			defer p.Stop(10 * time.Second)
			s0, err := ReadProc(p.Pid)
			if err != nil {
				return err
			}
			pw := testbed.NewPassword()
			smp, err := c.ClosedLoop(ctx, Load{Concurrency: n, Duration: b.s.growth, Count: 100000}, func(w int) (protocol.RequestSpec, func(string), error) {
				now := time.Now()
				return protocol.RequestSpec{Op: wire.OpReset,
					Target:   protocol.Target{UserPrincipalName: fmt.Sprintf("%s-%d@bench.test", queue, w)},
					Actor:    protocol.Actor{ID: "bench@wbagent.test", Kind: protocol.ActorAdmin},
					IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute), New: secretFrom(pw)}, nil, nil
			})
			if err != nil {
				return err
			}
			f := smp.Figures()
			s1, err := ReadProc(p.Pid)
			if err != nil {
				return err
			}
			if _, err := c.Verify(c.Reset()); err != nil {
				return err
			}
			row := Row{Name: fmt.Sprintf("%d sessions", n), Figures: f, Agent: cost(s0, s1, f.Requests), Settings: "maxConcurrent 64"}
			b.logf("%s: %.0f/s p99 %.1f ms peak RSS %.1f MiB (at the end: anon %.1f MiB, file %.1f MiB)", row.Name, f.PerSecond, f.Latency.P99,
				row.Agent.PeakRSSMB, float64(s1.RSSAnon)/(1<<20), float64(s1.RSSFile)/(1<<20))
			b.rep.Growth = append(b.rep.Growth, row)
			return nil
		}()
		if err != nil {
			return err
		}
	}
	return nil
}

// drain times a backlog of 10,000 requests on a plain queue.
func (b *bench) drain(ctx context.Context) error {
	row, err := b.backlog(ctx, "drain", b.xwing, false, benchMaxConcurrent, benchIdle, b.s.drain)
	if err != nil {
		return err
	}
	row.Name = fmt.Sprintf("%d queued, x-wing plain", b.s.drain)
	b.logf("%s: drained in %.1f s (%.0f/s), peak RSS %.1f MiB", row.Name, row.DrainSeconds, row.PerSecond, row.Agent.PeakRSSMB)
	b.rep.Drain = &row
	return nil
}

// targets compares the report with the goals of the benchmark.
func targets(r *Report) []Target {
	var ts []Target
	find := func(rows []Row, name string) *Row {
		for i := range rows {
			if rows[i].Name == name {
				return &rows[i]
			}
		}
		return nil
	}
	for _, mode := range []string{"plain", "sessions"} {
		if e := find(r.EndToEnd, "reset c=4 "+mode); e != nil {
			ts = append(ts, Target{Name: "end to end ÷ ceiling, reset c=4 " + mode, Want: "≥ 0.90",
				Got: fmt.Sprintf("%.2f", e.RatioToCeiling), Met: e.RatioToCeiling >= 0.90})
		}
		if e := find(r.EndToEnd, "reset c=1 "+mode); e != nil {
			ts = append(ts, Target{Name: "end-to-end p50 − raw reset p50, c=1 " + mode, Want: "≤ 10 ms",
				Got: fmt.Sprintf("%.1f ms", e.P50OverRawMs), Met: e.P50OverRawMs <= 10})
		}
	}
	var best *Row
	for i, c := range r.Capacity {
		if strings.HasPrefix(c.Name, "x-wing") && (best == nil || c.PerSecond > best.PerSecond) {
			best = &r.Capacity[i]
		}
	}
	if best != nil {
		ts = append(ts, Target{Name: "agent capacity with x-wing (best run)", Want: "≥ 2000 req/s",
			Got: fmt.Sprintf("%.0f req/s on %d CPUs (%s, %s)", best.PerSecond, r.Machine.CPUs, best.Name, best.Settings), Met: best.PerSecond >= 2000})
	}
	for _, tr := range r.TransportRatios {
		if tr.Transport != transportWS {
			continue
		}
		ts = append(ts, Target{Name: "websockets+TLS ÷ plain AMQP throughput, agent capacity", Want: "≥ 0.90",
			Got: fmt.Sprintf("%.2f (rounds %.2f–%.2f, median %.2f)", tr.Throughput, tr.RoundMin, tr.RoundMax, tr.RoundMedian),
			Met: tr.Throughput >= 0.90})
	}
	if g := find(r.Growth, "64 sessions"); g != nil && g.Agent != nil {
		ts = append(ts, Target{Name: "agent peak RSS at 64 sessions", Want: "< 60 MiB",
			Got: fmt.Sprintf("%.1f MiB", g.Agent.PeakRSSMB), Met: g.Agent.PeakRSSMB < 60})
	}
	return ts
}

// secretFrom wraps a generated password; the runs' passwords are made
// here, never read from anywhere.
func secretFrom(pw string) *secret.Secret { return secret.FromString(pw) }
