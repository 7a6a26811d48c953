//go:build windows

package main

import (
	"fmt"
	"os"
)

// serviceInstall registers the Windows service (or updates it) running
// `run --service --config cfgPath` as account, with the Event Log source
// and the ACL of the config's folder; see winInstall.
func serviceInstall(env *cmdEnv, cfgPath, account string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find wbagent.exe: %w", err)
	}
	spec, err := winServiceSpecFor(exe, cfgPath, account)
	if err != nil {
		return withCode(exitUsage, err)
	}
	return winInstall(newSCM(), env.stdout, spec)
}

// serviceUninstall removes the service and its Event Log source; config,
// keys, state and logs under %ProgramData%\wbagent stay.
func serviceUninstall(env *cmdEnv) error { return winUninstall(newSCM(), env.stdout, serviceName) }

// serviceControl starts, stops or restarts the service.
func serviceControl(env *cmdEnv, verb string) error {
	return winControl(newSCM(), env.stdout, serviceName, verb)
}

// serviceStatus prints the service's state: exit 0 when running, 3 when
// stopped or not installed.
func serviceStatus(env *cmdEnv) error { return winStatus(newSCM(), env.stdout, serviceName) }
