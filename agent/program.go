package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/kardianos/service"
	"go.uber.org/zap"

	"wbagent/internal/config"
	"wbagent/internal/logging"
	"wbagent/internal/version"
)

// component is one long-running part of the agent (the HTTP endpoints, the
// pipeline). start must not block beyond setting up; stop waits, bounded by
// its context, for the component's in-flight work.
type component interface {
	name() string
	start(ctx context.Context) error
	stop(ctx context.Context) error
}

// program is the agent as kardianos/service drives it. Start launches and
// returns at once; Stop cancels and waits up to the grace period for
// in-flight writebacks; a second Stop returns at once.
type program struct {
	cfg    *config.Config
	log    *logging.Logger
	getenv func(string) string
	build  func(ctx context.Context, p *program) ([]component, error)

	mu       sync.Mutex
	built    []component
	cancel   context.CancelFunc
	running  []component
	done     chan struct{}
	fatal    chan error
	stopping bool
}

func newProgram(cfg *config.Config, log *logging.Logger, getenv func(string) string, build func(context.Context, *program) ([]component, error)) *program {
	return &program{cfg: cfg, log: log, getenv: getenv, build: build, done: make(chan struct{}), fatal: make(chan error, 1)}
}

// prepare builds the components: keys, secrets and local files are loaded
// here, before the service reports running, so a broken installation fails
// at once with its own error instead of after a "started".
func (p *program) prepare(ctx context.Context) error {
	comps, err := p.build(ctx, p)
	if err != nil {
		return err
	}
	p.built = comps
	return nil
}

// Start implements service.Interface.
func (p *program) Start(service.Service) error {
	ctx, cancel := context.WithCancel(context.Background())
	p.mu.Lock()
	p.cancel = cancel
	p.mu.Unlock()
	go p.serve(ctx)
	return nil
}

func (p *program) serve(ctx context.Context) {
	defer close(p.done)
	for _, c := range p.built {
		if err := c.start(ctx); err != nil {
			p.fail(fmt.Errorf("start %s: %w", c.name(), err))
			p.stopAll(context.Background())
			return
		}
		p.mu.Lock()
		p.running = append(p.running, c)
		p.mu.Unlock()
		p.log.Info("started", zap.String(logging.FieldComponent, c.name()))
	}
	p.log.Info("wbagent is running", zap.String(logging.FieldAgent, p.cfg.Agent.Name))
	<-ctx.Done()
}

func (p *program) fail(err error) {
	p.log.Error("wbagent cannot run", zap.Error(err))
	select {
	case p.fatal <- err:
	default:
	}
}

// Stop implements service.Interface.
func (p *program) Stop(service.Service) error {
	p.mu.Lock()
	if p.stopping || p.cancel == nil {
		p.mu.Unlock()
		return nil
	}
	p.stopping = true
	p.mu.Unlock()
	grace := p.cfg.Agent.GracePeriod.D()
	p.log.Info("stopping: finishing in-flight writebacks", zap.Duration(logging.FieldDuration, grace))
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	// Components stop in reverse order while their context is still live,
	// so the pipeline finishes its in-flight work before anything it needs
	// goes away; only then is the root context cancelled.
	p.stopAll(ctx)
	p.cancel()
	select {
	case <-p.done:
	case <-ctx.Done():
	}
	p.log.Info("stopped")
	return nil
}

func (p *program) stopAll(ctx context.Context) {
	p.mu.Lock()
	comps := p.running
	p.running = nil
	p.mu.Unlock()
	for i := len(comps) - 1; i >= 0; i-- {
		if err := comps[i].stop(ctx); err != nil {
			p.log.Warn("stop", zap.String(logging.FieldComponent, comps[i].name()), zap.Error(err))
		}
	}
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
	p := newProgram(cfg, log, env.getenv, buildComponents)
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
			// A second SIGINT/SIGTERM while draining exits at once.
			again := make(chan os.Signal, 1)
			signal.Notify(again, os.Interrupt, syscall.SIGTERM)
			go func() {
				if _, ok := <-again; ok {
					os.Exit(exitError)
				}
			}()
			defer signal.Stop(again)
			start := time.Now()
			_ = p.Stop(nil)
			log.Info("exiting", zap.Duration(logging.FieldDuration, time.Since(start)))
			return nil
		}
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
