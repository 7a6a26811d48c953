package main

import (
	"fmt"
	"path/filepath"

	"github.com/kardianos/service"
)

// serviceName is the name of the systemd unit and the Windows service.
const serviceName = "wbagent"

// serviceConfig describes the service kardianos/service installs on
// systems other than Windows (Windows: winServiceSpecFor). On Linux the
// unit template is the same hardened unit the packages install.
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
