//go:build windows

package agent

import (
	"fmt"

	"wbagent/internal/audit"
	"wbagent/internal/config"
)

// auditSinks returns the audit destinations besides the file: the Windows
// Event Log under source wbagent when audit.eventLog is set.
func auditSinks(cfg *config.Config) ([]audit.Sink, error) {
	if !cfg.Audit.EventLog {
		return nil, nil
	}
	l, err := audit.OpenEventLog(audit.EventSource)
	if err != nil {
		return nil, fmt.Errorf("audit.eventLog: %w (or set audit.eventLog: false)", err)
	}
	return []audit.Sink{l}, nil
}
