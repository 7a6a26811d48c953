//go:build windows

package main

import "wbagent/internal/audit"

// beforeInstall registers the Event Log source the audit trail writes
// under, as the MSI does.
func beforeInstall(*cmdEnv) error { return audit.InstallEventSource(audit.EventSource) }

// afterUninstall removes the Event Log source; config, keys, state and logs
// under %ProgramData%\wbagent stay.
func afterUninstall() error { return audit.RemoveEventSource(audit.EventSource) }
