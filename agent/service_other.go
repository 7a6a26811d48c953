//go:build !windows

package main

import (
	"fmt"
	"runtime"

	"github.com/kardianos/service"
)

// runAsService runs p under the service manager through kardianos/service,
// which answers systemd's stop requests; a fatal error stops the agent and
// returns it, so that the manager restarts the agent.
func runAsService(p *program) error {
	s, err := newService(p, p.cfg.Path)
	if err != nil {
		_ = p.Stop(nil)
		return err
	}
	serviceRan = true
	// kardianos runs the service loop (it answers the manager's stop
	// requests). A fatal error stops the agent the same ordered way, and
	// the error exit makes the service manager restart it.
	done := make(chan error, 1)
	go func() { done <- s.Run() }()
	select {
	case err := <-done:
		_ = p.Stop(nil)
		return err
	case err := <-p.fatal:
		_ = p.Stop(nil)
		return err
	}
}

// newService binds the program to the platform's service manager.
func newService(p service.Interface, configPath string) (service.Service, error) {
	c, err := serviceConfig(configPath, runtime.GOOS)
	if err != nil {
		return nil, err
	}
	s, err := service.New(p, c)
	if err != nil {
		return nil, fmt.Errorf("service manager: %w", err)
	}
	return s, nil
}

// reportStartFailure does nothing: systemd reads the exit code.
func reportStartFailure(int) {}
