//go:build windows

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"wbagent/internal/config"
)

// serviceInstall registers the Windows service (or updates it) running
// `run --service --config cfgPath` as account, with the Event Log source
// and the ACL of the config's folder; see winInstall.
func serviceInstall(env *cmdEnv, cfg *config.Config, account string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find wbagent.exe: %w", err)
	}
	// The state folder is created now, so it gets the ACL before the agent
	// writes its first record there.
	if err := os.MkdirAll(cfg.Agent.StateDir, 0o700); err != nil {
		return fmt.Errorf("create the state folder %s: %w", cfg.Agent.StateDir, err)
	}
	dirs := []string{cfg.Agent.StateDir, filepath.Dir(cfg.Agent.SigningKey)}
	for _, k := range cfg.Agent.DecryptionKeys {
		dirs = append(dirs, filepath.Dir(k))
	}
	spec, err := winServiceSpecFor(exe, cfg.Path, account, dirs...)
	if err != nil {
		return withCode(exitUsage, err)
	}
	return winInstall(newSCM(), env.stdout, spec)
}

// serviceUninstall removes the service and its Event Log source; config,
// keys, state and logs under %ProgramData%\wbagent stay unless purge, and
// then only once the service is gone (a running agent holds its files).
func serviceUninstall(env *cmdEnv, purge bool) error {
	if err := winUninstall(newSCM(), env.stdout, serviceName); err != nil || !purge {
		return err
	}
	return winPurge(env.stdout, filepath.Dir(defaultConfigPath()))
}

// serviceControl starts, stops or restarts the service.
func serviceControl(env *cmdEnv, verb string) error {
	return winControl(newSCM(), env.stdout, serviceName, verb)
}

// serviceStatus prints the service's state: exit 0 when running, 3 when
// stopped or not installed.
func serviceStatus(env *cmdEnv) error { return winStatus(newSCM(), env.stdout, serviceName) }
