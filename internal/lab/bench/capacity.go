package bench

import (
	"bufio"
	"context"
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

	"go.uber.org/zap"

	"wbagent/internal/agent"
	"wbagent/internal/config"
	"wbagent/internal/lab/testbed"
	"wbagent/internal/lab/testkit"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
	"wbagent/internal/writeback"
)

// CapacityAgentCommand is the hidden first argument that makes the
// benchmark binary run as a capacity agent (see RunCapacityAgent).
const CapacityAgentCommand = "capacity-agent"

// capacityReady is the line a capacity agent prints once it consumes.
const capacityReady = "capacity agent running"

// capacityComponents starts the line, printed before capacityReady, that
// names the components the capacity agent was built from.
const capacityComponents = "components: "

// instantDirectory answers every write at once with ok, so that the
// agent itself (keys, ledger, audit, bus) is all that is measured.
type instantDirectory struct{}

func (instantDirectory) Apply(context.Context, writeback.Change) writeback.Applied {
	return writeback.Applied{Code: wire.CodeOK, DN: "CN=bench,OU=Staff,DC=bench,DC=test", DC: "instant"}
}

func (instantDirectory) PwdLastSet(context.Context, protocol.Target) (time.Time, error) {
	return time.Time{}, nil
}

// RunCapacityAgent is the capacity agent's main: the agent `wbagent run`
// builds, by the same constructor (internal/agent.New) from the same
// config file (keys, ledger, audit trail and its sinks, writeback handler,
// Service Bus consumer and credential, metrics, HTTP, JSON logs to stderr
// and the log file), with the directory replaced by one that answers at
// once. It runs as its own process so that its CPU time and
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
	a, err := agent.New(ctx, cfg, agent.Deps{Logger: log.Logger, Getenv: os.Getenv, Clock: writeback.SystemClock{},
		Directory: instantDirectory{}})
	if err != nil {
		return err
	}
	stop := func() error {
		sctx, cancel := context.WithTimeout(context.Background(), cfg.Agent.GracePeriod.D())
		defer cancel()
		return a.Stop(sctx)
	}
	if err := a.Start(ctx); err != nil {
		return errors.Join(err, stop())
	}
	fmt.Fprintln(stdout, capacityComponents+strings.Join(a.Components(), " "))
	fmt.Fprintln(stdout, capacityReady)
	select {
	case <-ctx.Done():
	case err = <-a.Fatal():
	}
	return errors.Join(err, stop())
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

// Process is an agent process being measured: a `wbagent run` or a
// capacity agent.
type Process struct {
	Pid int
	// Components names what the capacity agent was built from (empty for
	// a `wbagent run`).
	Components string
	cmd        *exec.Cmd
	exited     chan struct{}
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
			if c, found := strings.CutPrefix(sc.Text(), capacityComponents); found && !ok {
				p.Components = c
			}
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
	testkit.Stop(p.cmd, p.exited, syscall.SIGTERM, timeout)
}
