package main

import (
	"fmt"
	"net"

	"wbagent/internal/config"
)

// auditSafetyRows show how the audit trail is kept bounded and who may
// read /readyz's details, with a WARN for each choice an admin made that
// gives up a protection.
func auditSafetyRows(cfg *config.Config) []checkRow {
	a := cfg.Audit
	var rows []checkRow
	rot := checkRow{Name: "audit rotation", OK: true}
	switch {
	case a.Rotate.MaxSizeMB == 0 && a.Rotate.MaxAge == 0:
		rot.Warn, rot.Detail = true, "off: audit.file grows without bound"
		rot.Fix = "set audit.rotate.maxSizeMB (default 64) or audit.rotate.maxAge; the hash chain continues across files"
	case a.Rotate.MaxSizeMB == 0:
		rot.Detail = fmt.Sprintf("every %s, chain continuing across files (FILE.<time>)", a.Rotate.MaxAge.D())
	case a.Rotate.MaxAge == 0:
		rot.Detail = fmt.Sprintf("at %d MB, chain continuing across files (FILE.<time>)", a.Rotate.MaxSizeMB)
	default:
		rot.Detail = fmt.Sprintf("at %d MB or every %s, chain continuing across files (FILE.<time>)", a.Rotate.MaxSizeMB, a.Rotate.MaxAge.D())
	}
	rows = append(rows, rot)
	agg := checkRow{Name: "audit of untrusted messages", OK: true,
		Detail: fmt.Sprintf("one line per sender kid and reason every %s, with a count", a.AggregateRejections.D())}
	if a.AggregateRejections == 0 {
		agg.Warn, agg.Detail = true, "audit.aggregateRejections is 0s: every malformed or unauthenticated message gets its own line, so anyone who can send to the queue can grow the audit file"
		agg.Fix = "remove audit.aggregateRejections (default 1m)"
	}
	rows = append(rows, agg)
	if cfg.HTTP.Listen != "" {
		ready := checkRow{Name: "/readyz details", OK: true, Detail: "why a check fails is shown to loopback callers only"}
		if cfg.HTTP.ReadyDetails {
			ready.Warn = true
			ready.Detail = "http.readyDetails is true: every caller of /readyz learns server names, paths and error texts"
			if host, _, err := net.SplitHostPort(cfg.HTTP.Listen); err == nil {
				if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
					ready.Detail += " (http.listen is loopback, so only local callers can ask)"
				}
			}
			ready.Fix = "remove http.readyDetails unless every host that reaches " + cfg.HTTP.Listen + " may see them"
		}
		rows = append(rows, ready)
	}
	return rows
}
