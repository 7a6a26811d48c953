package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

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

// serviceRan is set once the service loop ran, so a failure after it is not
// reported a second time.
var serviceRan bool

// asServiceCommand wraps `run`: when started with --service and failing
// before the service loop, the failure is reported to the service manager
// (see reportStartFailure).
func asServiceCommand(run func(context.Context, *cmdEnv, []string) error) func(context.Context, *cmdEnv, []string) error {
	return func(ctx context.Context, env *cmdEnv, args []string) error {
		err := run(ctx, env, args)
		if err != nil && !serviceRan && slices.ContainsFunc(args, isServiceFlag) {
			reportStartFailure(exitCode(err, io.Discard))
		}
		return err
	}
}

// isServiceFlag matches the forms the flag package accepts for --service.
func isServiceFlag(a string) bool {
	a = strings.TrimLeft(a, "-")
	return a == "service" || a == "service=true" || a == "service=1"
}
