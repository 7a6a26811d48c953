//go:build !windows

package agent

import (
	"wbagent/internal/audit"
	"wbagent/internal/config"
)

// auditSinks returns the audit destinations besides the file: none here
// (audit.eventLog is a Windows setting).
func auditSinks(*config.Config) ([]audit.Sink, error) { return nil, nil }
