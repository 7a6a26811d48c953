package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"wbagent/internal/audit"
)

// `wbagent audit verify FILE` checks an audit file's hash chain, together
// with the files rotated out of it (FILE.<time stamp>), oldest first, as one
// chain. Exit codes: 0 the chain is intact, 3 (exitNegative) it is broken,
// 1 a file cannot be read, 2 usage. A broken chain and an unreadable file
// differ on purpose: the first is evidence of tampering or damage, the
// second a path or permission problem.
func init() {
	register(&command{
		name:    "audit",
		summary: "audit verify FILE: check an audit file's hash chain, with its rotated files (exit 0 intact, 3 broken, 1 unreadable)",
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
	fs := newFlags(env, "audit verify", "audit verify [-from HASH] FILE")
	from := fs.String("from", audit.Genesis, "the hash the oldest file's chain continues from: the last hash of the file before it, when that file was archived away")
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
	if len(*from) != len(audit.Genesis) || strings.Trim(*from, "0123456789abcdef") != "" {
		return withCode(exitUsage, fmt.Errorf("audit verify: -from %q is not a hash (64 lowercase hex digits, as `last hash:` prints it)", *from))
	}
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if st.IsDir() {
		return fmt.Errorf("audit verify: %s is a folder; name the audit file (audit.file in the config)", path)
	}
	rotated, err := audit.RotatedFiles(path)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	set := append(rotated, path)
	reps, err := audit.VerifySet(set, *from)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	lines := 0
	for i, r := range reps {
		if !r.OK() {
			fmt.Fprintf(env.stdout, "%s: hash chain BROKEN at line %d: %s\n", r.Path, r.Broken, r.Reason)
			before := fmt.Sprintf("the %d lines before it verify", r.Lines)
			switch r.Lines {
			case 0:
				before = "no line before it"
			case 1:
				before = "the line before it verifies"
			}
			if i > 0 {
				before += fmt.Sprintf(", and the %d files before this one", i)
			}
			fmt.Fprintf(env.stdout, "%s; keep the files as evidence\n", before)
			return withCode(exitNegative, nil)
		}
		lines += r.Lines
		if len(set) > 1 {
			fmt.Fprintf(env.stdout, "%s: %d lines, chain intact\n", r.Path, r.Lines)
		}
	}
	if len(set) > 1 {
		fmt.Fprintf(env.stdout, "%s and %d rotated files: %d lines checked, hash chain OK\n", path, len(rotated), lines)
	} else {
		fmt.Fprintf(env.stdout, "%s: %d lines checked, hash chain OK\n", path, lines)
	}
	// Lines cut off the end leave a shorter, valid chain; only a copy of the
	// last hash kept elsewhere shows that.
	fmt.Fprintf(env.stdout, "last hash: %s\n", reps[len(reps)-1].Last)
	return nil
}
