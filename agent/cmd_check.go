package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

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
	fs := newFlags(env, "check", "check [--config FILE] [--offline] [--json]")
	cfgPath := fs.String("config", defaultConfigPath(), "config file to check")
	offline := fs.Bool("offline", false, "validate the config file alone: read no key or secret file, reach no server")
	asJSON := fs.Bool("json", false, "print one JSON document "+checkJSONShape+" instead of rows")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	out := newCheckPrinter(env, *asJSON)
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		out.rows([]checkRow{{Name: "config", Detail: firstLine(err.Error()),
			Fix: "fix the file as the message says; every key is described in config/wbagent.example.yaml"}})
		out.finish()
		return err
	}
	rows := []checkRow{{Name: "config", OK: true, Detail: fmt.Sprintf("%s (version %d, %d domain(s), queue %s)",
		cfg.Path, cfg.Version, len(cfg.Directory.Domains), cfg.ServiceBus.Queue)}}
	for _, w := range cfg.Warnings() {
		rows = append(rows, checkRow{Name: "config warning", OK: true, Detail: w})
	}
	rows = append(rows, scopeRows(cfg)...)
	rows = append(rows, auditSafetyRows(cfg)...)
	out.rows(rows)
	if !*offline {
		// Each group prints as soon as it returns; the slow ones (the
		// directory, Service Bus) show what is being waited for.
		out.group("secrets and folders", func() []checkRow { return localChecks(cfg, env) })
		out.group("key files", func() []checkRow { return keyChecks(cfg) })
		out.group("folder permissions", func() []checkRow { return aclChecks(cfg) })
		out.group("the directory", func() []checkRow { return directoryRows(ctx, cfg, env.getenv) })
		out.group("service bus "+cfg.ServiceBus.Queue, func() []checkRow { return busChecks(ctx, cfg, env.getenv) })
	}
	if !out.finish() {
		return withCode(exitError, fmt.Errorf("check failed: see the FAIL rows above"))
	}
	return nil
}

// localChecks tests what lives on this machine: secrets, state and audit
// folders. Key files and servers have their own groups (keyChecks,
// directoryRows, busChecks).
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
			rows = append(rows, checkRow{Name: "secret " + r.path, Detail: err.Error(), Fix: secretFix(err, r.ref)})
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
