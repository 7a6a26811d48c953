package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"wbagent/internal/agent"
	"wbagent/internal/config"
)

// checkRow is one line of `wbagent check`: what was tested, whether it
// passed, what was seen, and — on failure — what to do about it.
type checkRow struct {
	Name string
	OK   bool
	// Warn marks a passing row that still needs the admin's attention (an
	// unsafe option chosen on purpose, a legacy certificate): it prints
	// WARN with its fix line, and does not fail the check.
	Warn   bool
	Detail string
	Fix    string
}

func init() {
	register(&command{
		name:    "check",
		summary: "validate the config and, unless --offline, test every dependency (keys, directory, Service Bus)",
		run:     runCheck,
	})
}

func runCheck(ctx context.Context, env *cmdEnv, args []string) error {
	fs := newFlags(env, "check", "check [--config FILE] [--offline]")
	cfgPath := fs.String("config", defaultConfigPath(), "config file to check")
	offline := fs.Bool("offline", false, "only validate the config; touch no file, secret or server")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		printRows(env.stdout, []checkRow{{Name: "config", Detail: firstLine(err.Error()),
			Fix: "fix the file as the message says; every key is described in config/wbagent.example.yaml"}})
		return err
	}
	rows := []checkRow{{Name: "config", OK: true, Detail: fmt.Sprintf("%s (version %d, %d domain(s), queue %s)",
		cfg.Path, cfg.Version, len(cfg.Directory.Domains), cfg.ServiceBus.Queue)}}
	for _, w := range cfg.Warnings() {
		rows = append(rows, checkRow{Name: "config warning", OK: true, Detail: w})
	}
	rows = append(rows, scopeRows(cfg)...)
	rows = append(rows, auditSafetyRows(cfg)...)
	if !*offline {
		rows = append(rows, localChecks(cfg, env)...)
		rows = append(rows, keyChecks(cfg)...)
		rows = append(rows, aclChecks(cfg)...)
		rows = append(rows, directoryRows(ctx, cfg, env.getenv)...)
		rows = append(rows, busChecks(ctx, cfg, env.getenv)...)
	}
	printRows(env.stdout, rows)
	for _, r := range rows {
		if !r.OK {
			return withCode(exitError, fmt.Errorf("check failed: see the FAIL rows above"))
		}
	}
	return nil
}

// localChecks tests what lives on this machine: secrets, state and audit
// folders. Key files and servers are tested by dependencyChecks.
func localChecks(cfg *config.Config, env *cmdEnv) []checkRow {
	var rows []checkRow
	type ref struct {
		path string
		ref  *config.SecretRef
	}
	secrets := []ref{{"servicebus.connectionString", cfg.ServiceBus.ConnectionString}}
	if cr := cfg.ServiceBus.Credential; cr != nil {
		secrets = append(secrets, ref{"servicebus.credential.clientSecret", cr.ClientSecret})
	}
	if cr := cfg.ServiceBus.Credential; cr != nil {
		secrets = append(secrets, ref{"servicebus.credential.certificatePassword", cr.CertificatePassword})
	}
	if a := cfg.ServiceBus.ProxyAuth; a != nil {
		secrets = append(secrets, ref{"servicebus.proxyAuth.password", a.Password})
	}
	for i, d := range cfg.Directory.Domains {
		secrets = append(secrets, ref{fmt.Sprintf("directory.domains[%d].bind.password", i), d.Bind.Password})
	}
	for _, r := range secrets {
		if r.ref == nil {
			continue
		}
		s, err := r.ref.Resolve(env.getenv)
		if err != nil {
			rows = append(rows, checkRow{Name: "secret " + r.path, Detail: err.Error(), Fix: "make " + r.ref.Source() + " available to the service"})
			continue
		}
		s.Destroy()
		rows = append(rows, checkRow{Name: "secret " + r.path, OK: true, Detail: "from " + r.ref.Source()})
	}
	rows = append(rows, writableDir("state folder", cfg.Agent.StateDir))
	rows = append(rows, writableDir("audit folder", filepath.Dir(cfg.Audit.File)))
	if cfg.Log.File != nil {
		rows = append(rows, writableDir("log folder", filepath.Dir(cfg.Log.File.Path)))
	}
	return rows
}

// writableDir reports whether the agent can create files in dir, by
// writing and removing a probe file. A folder that does not exist yet is
// fine when the agent could create it at start: check changes nothing.
func writableDir(name, dir string) checkRow {
	row := checkRow{Name: name, Detail: dir}
	probe := dir
	for {
		if _, err := os.Stat(probe); err == nil {
			break
		}
		parent := filepath.Dir(probe)
		if parent == probe {
			break
		}
		probe = parent
	}
	f, err := os.CreateTemp(probe, ".wbagent-check-*")
	if err != nil {
		row.Detail, row.Fix = err.Error(), "create "+dir+" and give the service account write access to it"
		return row
	}
	name2 := f.Name()
	f.Close()
	os.Remove(name2)
	if probe != dir {
		row.Detail = dir + " (created at start)"
	}
	row.OK = true
	return row
}

func printRows(w io.Writer, rows []checkRow) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tCHECK\tDETAIL")
	for _, r := range rows {
		res := "OK"
		switch {
		case !r.OK:
			res = "FAIL"
		case r.Warn:
			res = "WARN"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", res, r.Name, r.Detail)
		if (!r.OK || r.Warn) && r.Fix != "" {
			fmt.Fprintf(tw, "\t\tfix: %s\n", r.Fix)
		}
	}
	tw.Flush()
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// directoryRows maps the config onto the directory's options (resolving
// bind passwords, wiped afterwards) and runs the directory's own checks.
func directoryRows(ctx context.Context, cfg *config.Config, getenv func(string) string) []checkRow {
	opts, err := agent.DirectoryOptions(cfg, getenv)
	defer func() {
		for _, s := range agent.BindPasswords(opts) {
			s.Destroy()
		}
	}()
	if err != nil {
		return []checkRow{{Name: "directory", Detail: err.Error(), Fix: "make the bind secret available to the service"}}
	}
	return directoryChecks(ctx, opts)
}
