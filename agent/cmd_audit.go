package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"wbagent/internal/audit"
)

// `wbagent audit verify FILE` checks an audit file's hash chain. Exit codes:
// 0 the chain is intact, 3 (exitNegative) it is broken, 1 the file cannot be
// read, 2 usage. A broken chain and an unreadable file differ on purpose:
// the first is evidence of tampering or damage, the second a path or
// permission problem.
func init() {
	register(&command{
		name:    "audit",
		summary: "audit verify FILE: check an audit file's hash chain (exit 0 intact, 3 broken, 1 unreadable)",
		run:     runAudit,
	})
}

func runAudit(_ context.Context, env *cmdEnv, args []string) error {
	if len(args) == 0 {
		return withCode(exitUsage, errors.New("audit: name a subcommand: wbagent audit verify FILE"))
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(env, args[1:])
	case "-h", "-help", "--help", "help":
		return runAuditVerify(env, []string{"-h"})
	}
	return withCode(exitUsage, fmt.Errorf("audit: unknown subcommand %q; use wbagent audit verify FILE", args[0]))
}

func runAuditVerify(env *cmdEnv, args []string) error {
	fs := newFlags(env, "audit verify", "audit verify FILE")
	var path string
	if n := len(args); n > 0 && !strings.HasPrefix(args[n-1], "-") {
		path, args = args[n-1], args[:n-1]
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if path == "" {
		return withCode(exitUsage, errors.New("audit verify: name the audit file (audit.file in the config)"))
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if !rep.OK() {
		fmt.Fprintf(env.stdout, "%s: hash chain BROKEN at line %d: %s\n", path, rep.Broken, rep.Reason)
		before := fmt.Sprintf("the %d lines before it verify", rep.Lines)
		switch rep.Lines {
		case 0:
			before = "no line before it"
		case 1:
			before = "the line before it verifies"
		}
		fmt.Fprintf(env.stdout, "%s; keep the file as evidence\n", before)
		return withCode(exitNegative, nil)
	}
	fmt.Fprintf(env.stdout, "%s: %d lines checked, hash chain OK\n", path, rep.Lines)
	// Lines cut off the end leave a shorter, valid chain; only a copy of the
	// last hash kept elsewhere shows that.
	fmt.Fprintf(env.stdout, "last hash: %s\n", rep.Last)
	return nil
}
