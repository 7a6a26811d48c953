//go:build !windows

package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/kardianos/service"
)

// runAsService runs p under the service manager through kardianos/service,
// which answers systemd's stop requests; a fatal error exits so that the
// manager restarts the agent.
func runAsService(p *program) error {
	s, err := newService(p, p.cfg.Path)
	if err != nil {
		return err
	}
	serviceRan = true
	go func() {
		if err := <-p.fatal; err != nil {
			os.Exit(exitError) // the service manager restarts us
		}
	}()
	return s.Run()
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
