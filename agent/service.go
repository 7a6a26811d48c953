package main

import (
	"fmt"
	"path/filepath"
	"runtime"

	"github.com/kardianos/service"
)

// serviceName is the name of the systemd unit and the Windows service.
const serviceName = "wbagent"

// serviceConfig describes the installed service. The Windows recovery
// options restart the agent 20 s after a crash and forget earlier failures
// after a day, so a flapping dependency never leaves the service stopped for
// good. On Linux the unit template is the same hardened unit the packages
// install.
func serviceConfig(configPath, goos string) (*service.Config, error) {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return nil, fmt.Errorf("config path %s: %w", configPath, err)
	}
	c := &service.Config{
		Name:        serviceName,
		DisplayName: "wbagent password writeback",
		Description: "Applies signed, encrypted password writebacks from Azure Service Bus to Active Directory.",
		Arguments:   []string{"run", "--config", abs},
		Option: service.KeyValue{
			// Windows service recovery (kardianos reads these on Windows only).
			"OnFailure":              "restart",
			"OnFailureDelayDuration": "20s",
			"OnFailureResetPeriod":   24 * 60 * 60,
			"DelayedAutoStart":       true,
			// systemd
			"Restart":      "on-failure",
			"ReloadSignal": "HUP",
		},
	}
	if goos == "linux" {
		c.UserName = "wbagent"
		if unit := systemdUnitTemplate(); unit != "" {
			c.Option["SystemdScript"] = unit
		}
		c.Dependencies = []string{"After=network-online.target", "Wants=network-online.target"}
	}
	return c, nil
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
