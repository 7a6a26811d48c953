package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/kardianos/service"
)

// The service-manager commands share one shape: a --config flag (the
// installed unit runs `wbagent run --config <that file>`) and one call into
// kardianos/service.
func init() {
	for _, c := range []struct{ name, summary string }{
		{"install", "install wbagent as a system service (systemd unit or Windows service) running `run --config FILE`"},
		{"uninstall", "remove the system service (config, keys, state and logs stay)"},
		{"start", "start the installed service"},
		{"stop", "stop the installed service"},
		{"restart", "restart the installed service"},
		{"status", "print whether the service is running; exit 0 when running, 3 otherwise"},
	} {
		name := c.name
		register(&command{name: name, summary: c.summary, run: func(ctx context.Context, env *cmdEnv, args []string) error {
			return runServiceCommand(env, name, args)
		}})
	}
}

func runServiceCommand(env *cmdEnv, name string, args []string) error {
	fs := newFlags(env, name, name+" [--config FILE]")
	cfgPath := fs.String("config", defaultConfigPath(), "config file the service runs with")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if name == "install" {
		// Refuse to install a service that would fail at its first start.
		if _, err := loadConfig(*cfgPath); err != nil {
			return err
		}
	}
	s, err := newService(serviceProgram{}, *cfgPath)
	if err != nil {
		return err
	}
	switch name {
	case "status":
		st, err := s.Status()
		if err != nil {
			if errors.Is(err, service.ErrNotInstalled) {
				fmt.Fprintln(env.stdout, "not installed")
				return withCode(exitNegative, nil)
			}
			return fmt.Errorf("service status: %w", err)
		}
		if st == service.StatusRunning {
			fmt.Fprintln(env.stdout, "running")
			return nil
		}
		fmt.Fprintln(env.stdout, "stopped")
		return withCode(exitNegative, nil)
	case "install":
		if err := beforeInstall(env); err != nil {
			return err
		}
	}
	if err := service.Control(s, name); err != nil {
		return fmt.Errorf("service %s: %w", name, err)
	}
	if name == "uninstall" {
		if err := afterUninstall(); err != nil {
			return err
		}
	}
	fmt.Fprintf(env.stdout, "service %s: %s done\n", serviceName, name)
	return nil
}

// serviceProgram is the do-nothing Interface kardianos needs to build a
// control handle; the real program is only built by `run`.
type serviceProgram struct{}

func (serviceProgram) Start(service.Service) error { return nil }
func (serviceProgram) Stop(service.Service) error  { return nil }
