package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kardianos/service"
	"go.uber.org/zap"

	"wbagent/internal/agent"
	"wbagent/internal/config"
	"wbagent/internal/logging"
	"wbagent/internal/version"
	"wbagent/internal/writeback"
)

// runner is what the program runs: *agent.Agent, or a fake in tests.
type runner interface {
	Start(ctx context.Context) error
	Stop(ctx context.Context) error
	Fatal() <-chan error
}

// program is the agent as kardianos/service drives it. Start launches and
// returns at once; Stop runs the agent's one ordered shutdown, bounded by
// the grace period; a second Stop returns at once. Whatever ends the
// program (a signal, a service stop, a fatal error, a failed start) ends
// in Stop.
type program struct {
	cfg    *config.Config
	log    *logging.Logger
	getenv func(string) string
	build  func(ctx context.Context, p *program) (runner, error)

	r        runner
	stopping atomic.Bool
	stopped  chan struct{}
	fatal    chan error
}

func newProgram(cfg *config.Config, log *logging.Logger, getenv func(string) string, build func(context.Context, *program) (runner, error)) *program {
	return &program{cfg: cfg, log: log, getenv: getenv, build: build, stopped: make(chan struct{}), fatal: make(chan error, 1)}
}

// buildAgent assembles the agent from the config (internal/agent).
func buildAgent(ctx context.Context, p *program) (runner, error) {
	return agent.New(ctx, p.cfg, agent.Deps{Logger: p.log.Logger, Getenv: p.getenv, Clock: writeback.SystemClock{}})
}

// prepare builds the agent: keys, secrets and local files are loaded here,
// before the service reports running, so a broken installation fails at
// once with its own error instead of after a "started".
func (p *program) prepare(ctx context.Context) error {
	r, err := p.build(ctx, p)
	if err != nil {
		return err
	}
	p.r = r
	return nil
}

// Start implements service.Interface.
func (p *program) Start(service.Service) error {
	go func() {
		if err := p.r.Start(context.Background()); err != nil {
			if !errors.Is(err, agent.ErrStopped) {
				p.fail(err)
			}
			return
		}
		select {
		case err := <-p.r.Fatal():
			p.fail(err)
		case <-p.stopped:
		}
	}()
	return nil
}

// fail hands err to whoever waits on p.fatal, which then runs Stop.
func (p *program) fail(err error) {
	p.log.Error("wbagent cannot run", zap.Error(err))
	select {
	case p.fatal <- err:
	default:
	}
}

// Stop implements service.Interface.
func (p *program) Stop(service.Service) error {
	if p.r == nil || !p.stopping.CompareAndSwap(false, true) {
		return nil
	}
	defer close(p.stopped)
	grace := p.cfg.Agent.GracePeriod.D()
	p.log.Info("stopping: finishing in-flight writebacks", zap.Duration(logging.FieldDuration, grace))
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := p.r.Stop(ctx); err != nil {
		p.log.Warn("stop", zap.Error(err))
	}
	p.log.Info("stopped")
	return nil
}

func init() {
	register(&command{
		name:    "run",
		summary: "run the agent in the foreground until SIGINT or SIGTERM (the installed service runs this)",
		run:     asServiceCommand(runAgent),
	})
}

func runAgent(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "run", "run [--config FILE] [--service]")
	cfgPath := fs.String("config", defaultConfigPath(), "config file")
	asService := fs.Bool("service", false, "answer the service manager (the installed service's command line says so; without it, wbagent guesses)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, env)
	if err != nil {
		return withCode(exitConfigInvalid, err)
	}
	defer log.Close()
	logStartup(log, cfg)
	p := newProgram(cfg, log, env.getenv, buildAgent)
	if err := p.prepare(ctx); err != nil {
		log.Error("wbagent cannot start", zap.Error(err))
		return err
	}

	if *asService || !service.Interactive() {
		// Started by systemd or the Windows service manager.
		return runAsService(p)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	_ = p.Start(nil)
	for {
		select {
		case <-hup:
			if err := log.Reopen(); err != nil {
				log.Warn("reopen log file", zap.Error(err))
			}
			log.Info("log file reopened")
		case err := <-p.fatal:
			_ = p.Stop(nil)
			return err
		case <-ctx.Done():
			return stopOnSignal(p, log)
		}
	}
}

// stopOnSignal runs the ordered stop after SIGINT or SIGTERM; a second
// signal while it drains gives up waiting and exits with an error (the
// in-flight messages are redelivered once their locks expire).
func stopOnSignal(p *program, log *logging.Logger) error {
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	start := time.Now()
	done := make(chan struct{})
	go func() { _ = p.Stop(nil); close(done) }()
	select {
	case <-done:
		log.Info("exiting", zap.Duration(logging.FieldDuration, time.Since(start)))
		return nil
	case <-again:
		return withCode(exitError, errors.New("second signal: exiting without waiting for in-flight writebacks; their messages are redelivered when their locks expire"))
	}
}

func newLogger(cfg *config.Config, env *cmdEnv) (*logging.Logger, error) {
	opts := logging.Options{Level: cfg.Log.Level, Format: cfg.Log.Format}
	if f := cfg.Log.File; f != nil {
		opts.File = logging.FileOptions{Path: f.Path, MaxSizeMB: f.MaxSizeMB, MaxBackups: f.MaxBackups, MaxAgeDays: f.MaxAgeDays}
	}
	return logging.New(opts, env.stderr)
}

// logStartup records what is running and with which settings: the
// effective config, with every secret shown only by its source.
func logStartup(log *logging.Logger, cfg *config.Config) {
	eff, err := json.Marshal(cfg)
	if err != nil {
		eff = []byte(`"unavailable"`)
	}
	log.Info("wbagent starting",
		zap.String(logging.FieldVersion, version.Version),
		zap.String(logging.FieldCommit, version.Commit),
		zap.String(logging.FieldPath, cfg.Path),
		zap.Any(logging.FieldConfig, json.RawMessage(eff)))
	for _, w := range cfg.Warnings() {
		log.Warn(w)
	}
}
