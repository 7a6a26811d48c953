package main

import (
	"context"

	"wbagent/internal/directory"
)

// directoryChecks tests every configured domain the way a writeback would
// use it (DNS, TCP, TLS and certificate, bind, rootDSE, the service
// account's rights on each scope OU) and returns one row per step, each
// failure with its fix. It never writes to the directory.
func directoryChecks(ctx context.Context, opts directory.Options) []checkRow {
	rows := directory.Check(ctx, opts)
	out := make([]checkRow, len(rows))
	for i, r := range rows {
		out[i] = checkRow{Name: r.Name, OK: r.OK, Warn: r.Warn, Detail: r.Detail, Fix: r.Fix}
	}
	return out
}
