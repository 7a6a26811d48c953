package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"wbagent/internal/lab/testbed"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// e2eAgent is one `wbagent run` process with its client.
type e2eAgent struct {
	mode   string // plain or sessions
	agent  *testbed.Agent
	pid    int
	client *Client
}

// job makes requests on the real accounts: worker w always uses account
// w, and a change moves that account's password on when it succeeds.
func (b *bench) job(op wire.Op) Job {
	return func(w int) (protocol.RequestSpec, func(string), error) {
		a := b.accounts[w]
		pw := b.dom.Secrets.New()
		now := time.Now()
		spec := protocol.RequestSpec{Op: op, Target: protocol.Target{UserPrincipalName: a.User.UPN}, New: pw,
			Actor:    protocol.Actor{ID: "bench@wbagent.test", Kind: protocol.ActorAdmin},
			IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute)}
		if op == wire.OpChange {
			spec.Old, spec.Actor.Kind = a.Password, protocol.ActorSelf
		}
		return spec, func(code string) {
			if code == wire.CodeOK {
				a.Password = pw
			}
		}, nil
	}
}

// startE2E starts `wbagent run` on the plain or the session queue and
// warms it up (connections to the DC and the bus).
func (b *bench) startE2E(ctx context.Context, sessions bool) (*e2eAgent, error) {
	e := &e2eAgent{mode: "plain"}
	if sessions {
		e.mode = "sessions"
	}
	queue := "e2e-" + e.mode
	files, err := testbed.WriteAgentConfig(testbed.AgentConfig{Dir: filepath.Join(b.dir, queue), Name: "bench-" + queue,
		Queue: queue, Sessions: sessions, MaxConcurrent: benchMaxConcurrent, SessionIdleTimeout: benchIdle, Keys: b.xwing}, b.dom)
	if err != nil {
		return nil, err
	}
	if e.agent, err = testbed.StartAgent(b.bin, files, testbed.AgentEnv(b.bus, b.dom)); err != nil {
		return nil, err
	}
	if err := e.agent.WaitRunning(ctx); err != nil {
		e.stop()
		return nil, err
	}
	if e.pid, err = FindProcess(b.bin, "run", "--config", files.Config); err != nil {
		e.stop()
		return nil, err
	}
	if e.client, err = NewClient(b.bus, b.xwing, queue, sessions, queue+"-replies"); err != nil {
		e.stop()
		return nil, err
	}
	if _, err := e.client.ClosedLoop(ctx, Load{Concurrency: workers, Count: 2 * workers, Duration: time.Minute}, b.job(wire.OpReset)); err != nil {
		e.stop()
		return nil, fmt.Errorf("warm-up on %s: %w", queue, err)
	}
	e.client.Reset()
	return e, nil
}

func (e *e2eAgent) stop() error {
	if e.client != nil {
		_ = e.client.Close()
	}
	return e.agent.Stop(20 * time.Second)
}

// endToEnd measures, for reset and change at concurrency 1 and 4, the
// directory alone (raw go-ldap) and `wbagent run` on a plain and on a
// session queue. The three alternate, round after round, so that a
// change in the machine's load (it is shared) touches all three alike.
func (b *bench) endToEnd(ctx context.Context) error {
	var agents []*e2eAgent
	defer func() {
		for _, e := range agents {
			_ = e.stop()
		}
	}()
	for _, sessions := range []bool{false, true} {
		e, err := b.startE2E(ctx, sessions)
		if err != nil {
			return err
		}
		agents = append(agents, e)
	}
	for _, op := range []wire.Op{wire.OpReset, wire.OpChange} {
		for _, c := range []int{1, workers} {
			l := Load{Concurrency: c, Duration: b.s.e2e, Count: 10000}
			var raw Sample
			e2e := make([]Sample, len(agents))
			cpu := make([]time.Duration, len(agents))
			var peak []ProcSample
			for range b.s.rounds {
				s, err := CeilingRun(ctx, b.dom, op, b.accounts, l)
				if err != nil {
					return err
				}
				raw.Add(s)
				peak = peak[:0]
				for i, e := range agents {
					before, err := ReadProc(e.pid)
					if err != nil {
						return err
					}
					s, err := e.client.ClosedLoop(ctx, l, b.job(op))
					if err != nil {
						return fmt.Errorf("%s c=%d %s: %w", op, c, e.mode, err)
					}
					after, err := ReadProc(e.pid)
					if err != nil {
						return err
					}
					if _, err := e.client.Verify(e.client.Reset()); err != nil {
						return err
					}
					e2e[i].Add(s)
					cpu[i] += after.CPU - before.CPU
					peak = append(peak, after)
				}
			}
			rawRow := Row{Name: fmt.Sprintf("%s c=%d", op, c), Figures: raw.Figures()}
			b.rep.Ceiling = append(b.rep.Ceiling, rawRow)
			b.logf("raw %s: %.1f/s p50 %.1f ms", rawRow.Name, rawRow.PerSecond, rawRow.Latency.P50)
			for i, e := range agents {
				f := e2e[i].Figures()
				row := Row{Name: fmt.Sprintf("%s c=%d %s", op, c, e.mode), Figures: f,
					Agent:          cost(ProcSample{}, ProcSample{CPU: cpu[i], PeakRSS: peak[i].PeakRSS}, f.Requests),
					RatioToCeiling: round(f.PerSecond/rawRow.PerSecond, 2),
					P50OverRawMs:   round(f.Latency.P50-rawRow.Latency.P50, 1)}
				b.logf("%s: %.1f/s p50 %.1f ms (÷ ceiling %.2f, p50 %+.1f ms)", row.Name, f.PerSecond, f.Latency.P50, row.RatioToCeiling, row.P50OverRawMs)
				b.rep.EndToEnd = append(b.rep.EndToEnd, row)
			}
		}
	}
	return nil
}
