package bench

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/bus"
	"wbagent/internal/config"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/ledger"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
	"wbagent/internal/telemetry"
	"wbagent/internal/writeback"
)

// CapacityAgentCommand is the hidden first argument that makes the
// benchmark binary run as a capacity agent (see RunCapacityAgent).
const CapacityAgentCommand = "capacity-agent"

// capacityReady is the line a capacity agent prints once it consumes.
const capacityReady = "capacity agent running"

// instantDirectory answers every write at once with ok, so that the
// agent itself (keys, ledger, audit, bus) is all that is measured.
type instantDirectory struct{}

func (instantDirectory) Apply(context.Context, writeback.Change) writeback.Applied {
	return writeback.Applied{Code: protocol.CodeOK, DN: "CN=bench,OU=Staff,DC=bench,DC=test", DC: "instant"}
}

func (instantDirectory) PwdLastSet(context.Context, protocol.Target) (time.Time, error) {
	return time.Time{}, nil
}

// RunCapacityAgent is the capacity agent's main: the agent's pipeline as
// `wbagent run` builds it from the same config file (keys, ledger, audit
// trail, writeback handler, Service Bus consumer, metrics, JSON logs to
// stderr and the log file), with the directory replaced by one that
// answers at once. It runs as its own process so that its CPU time and
// peak RSS can be read from /proc. It stops on SIGTERM or SIGINT.
//
// Arguments: --config PATH, and --cpuprofile PATH to write a CPU profile.
func RunCapacityAgent(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(CapacityAgentCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "the agent config file")
	profile := fs.String("cpuprofile", "", "write a CPU profile here")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations since start) here on exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	lopts := logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format}
	if f := cfg.Log.File; f != nil {
		lopts.File = logging.FileOptions{Path: f.Path, MaxSizeMB: f.MaxSizeMB}
	}
	log, err := logging.New(lopts, stderr)
	if err != nil {
		return err
	}
	defer log.Close()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if *memProfile != "" {
		defer writeHeapProfile(*memProfile, log.Logger)
	}
	c, closeAll, err := capacityPipeline(cfg, log.Logger)
	defer closeAll()
	if err != nil {
		return err
	}
	if err := c.Start(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, capacityReady)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Agent.GracePeriod.D())
	defer cancel()
	return c.Stop(sctx)
}

func writeHeapProfile(path string, log *zap.Logger) {
	f, err := os.Create(path)
	if err != nil {
		log.Warn("heap profile not written", zap.Error(err))
		return
	}
	defer f.Close()
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		log.Warn("heap profile not written", zap.Error(err))
	}
}

// capacityPipeline wires the pipeline as agent/pipeline.go does, with the
// instant directory. closeAll releases what was opened, also on error.
func capacityPipeline(cfg *config.Config, log *zap.Logger) (_ *bus.Consumer, closeAll func(), err error) {
	var closers []func() error
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			_ = closers[i]()
		}
	}
	var keys []*protocol.DecryptionKey
	for _, p := range cfg.Agent.DecryptionKeys {
		k, err := protocol.LoadDecryptionKey(p)
		if err != nil {
			return nil, closeAll, err
		}
		keys = append(keys, k)
	}
	var senders []ed25519.PublicKey
	for _, s := range cfg.Agent.TrustedSenders {
		pub, err := protocol.LoadPublicKey(s.PublicKey)
		if err != nil {
			return nil, closeAll, err
		}
		senders = append(senders, pub)
	}
	opener, err := protocol.NewOpener(keys, senders, protocol.Limits{
		MaxClockSkew: cfg.Requests.MaxClockSkew.D(), MaxLifetime: cfg.Requests.MaxLifetime.D()})
	if err != nil {
		return nil, closeAll, err
	}
	signer, err := protocol.LoadSigningKey(cfg.Agent.SigningKey)
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, func() error { signer.Destroy(); return nil })
	led, err := ledger.Open(cfg.Agent.StateDir, ledger.Options{
		Retention: cfg.Requests.MaxLifetime.D() + cfg.Requests.MaxClockSkew.D(), Logger: log})
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, led.Close)
	aud, err := audit.Open(cfg.Audit.File, audit.Options{Logger: log})
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, aud.Close)
	h, err := writeback.New(writeback.Options{Agent: cfg.Agent.Name, RetryBudget: cfg.Requests.RetryBudget.D(),
		Opener: opener, Directory: instantDirectory{}, Ledger: led, Audit: aud, SigningKey: signer, Logger: log})
	if err != nil {
		return nil, closeAll, err
	}
	sb := cfg.ServiceBus
	if sb.ConnectionString == nil {
		return nil, closeAll, errors.New("capacity agent: servicebus.connectionString is required")
	}
	cs, err := sb.ConnectionString.Resolve(os.Getenv)
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, func() error { cs.Destroy(); return nil })
	client, err := bus.NewClient(bus.Connection{ConnectionString: cs, ApplicationID: "wbbench/" + cfg.Agent.Name,
		Retry: retryOptions(sb.Retry), Transport: benchTransport(sb)})
	if err != nil {
		return nil, closeAll, err
	}
	closers = append(closers, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return client.Close(ctx)
	})
	metrics, err := telemetry.NewMetrics(telemetry.NewRegistry())
	if err != nil {
		return nil, closeAll, err
	}
	c, err := bus.New(client, h, bus.Options{Queue: sb.Queue, Sessions: sb.Sessions, MaxConcurrent: sb.MaxConcurrent,
		SettleTimeout: sb.SettleTimeout.D(), SessionIdleTimeout: sb.SessionIdleTimeout.D(), Metrics: metrics, Logger: log})
	return c, closeAll, err
}

// Process is an agent process being measured: a `wbagent run` or a
// capacity agent.
type Process struct {
	Pid    int
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartCapacityAgent runs this executable as a capacity agent for the
// config in f, with env (testbed.AgentEnv), and waits until it consumes.
// profile, when set, is the path prefix of the CPU (.cpu.pprof) and heap
// (.mem.pprof) profiles it writes on exit.
func StartCapacityAgent(ctx context.Context, f *testbed.AgentFiles, env []string, profile string) (*Process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start capacity agent: %w", err)
	}
	args := []string{CapacityAgentCommand, "--config", f.Config}
	if profile != "" {
		args = append(args, "--cpuprofile", profile+".cpu.pprof", "--memprofile", profile+".mem.pprof")
	}
	logFile, err := os.OpenFile(f.Stderr, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start capacity agent: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stderr = logFile
	cmd.SysProcAttr = childProcAttr()
	out, err := cmd.StdoutPipe()
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start capacity agent: %w", err)
	}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start capacity agent: %w", err)
	}
	p := &Process{Pid: cmd.Process.Pid, cmd: cmd, exited: make(chan struct{})}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ok := false
		for sc.Scan() {
			if !ok && strings.TrimSpace(sc.Text()) == capacityReady {
				ok = true
				ready <- true
			}
		}
		if !ok {
			ready <- false
		}
	}()
	go func() { _ = cmd.Wait(); logFile.Close(); close(p.exited) }()
	select {
	case ok := <-ready:
		if ok {
			return p, nil
		}
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	p.Stop(time.Second)
	return nil, fmt.Errorf("capacity agent did not start (see %s)", f.Stderr)
}

// Stop sends SIGTERM and waits up to timeout, then kills.
func (p *Process) Stop(timeout time.Duration) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// retryOptions maps the config's retry section as the agent does.
func retryOptions(r config.Retry) azservicebus.RetryOptions {
	return azservicebus.RetryOptions{MaxRetries: int32(r.MaxRetries), RetryDelay: r.RetryDelay.D(), MaxRetryDelay: r.MaxRetryDelay.D()}
}
