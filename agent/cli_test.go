package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const exampleConfig = "../config/wbagent.example.yaml"

// runCLI runs the CLI as main would, with buffers for the streams.
func runCLI(t *testing.T, stdin string, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	e := &cmdEnv{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] }}
	err := runEnv(context.Background(), e, args)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestHelpAndUnknown(t *testing.T) {
	out, _, code := runCLI(t, "", nil, "help")
	if code != 0 || !strings.Contains(out, "check") || !strings.Contains(out, "version") || !strings.Contains(out, "run") {
		t.Fatalf("help: %d %q", code, out)
	}
	_, errOut, code := runCLI(t, "", nil, "frobnicate")
	if code != exitUsage || !strings.Contains(errOut, `unknown command "frobnicate"`) {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", nil, "check", "-h")
	if code != 0 || !strings.Contains(errOut, "usage: wbagent check") || !strings.Contains(errOut, "-offline") {
		t.Fatalf("check -h: %d %q", code, errOut)
	}
	_, _, code = runCLI(t, "", nil, "check", "--no-such-flag")
	if code != exitUsage {
		t.Fatalf("bad flag: want %d, got %d", exitUsage, code)
	}
	out, _, code = runCLI(t, "", nil, "version")
	if code != 0 || !strings.HasPrefix(out, "wbagent ") {
		t.Fatalf("version: %d %q", code, out)
	}
}

func TestCheckOffline(t *testing.T) {
	out, errOut, code := runCLI(t, "", nil, "check", "--offline", "--config", exampleConfig)
	if code != 0 || !strings.Contains(out, "OK") || strings.Contains(out, "FAIL") {
		t.Fatalf("example config: code %d\n%s\n%s", code, out, errOut)
	}

	dir := t.TempDir()
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, bytes.Replace(data, []byte("  maxConcurrent:"), []byte("  maxConcurent:"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", bad)
	if code != exitConfigInvalid || !strings.Contains(errOut, `servicebus.maxConcurent: unknown key (did you mean "maxConcurrent"?)`) ||
		!strings.Contains(errOut, "config line ") || !strings.Contains(out, "FAIL") {
		t.Fatalf("misspelt key: code %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	_, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", filepath.Join(dir, "absent.yaml"))
	if code != exitConfigMissing || !strings.Contains(errOut, "config file not found") {
		t.Fatalf("missing file: code %d %q", code, errOut)
	}
	_, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", dir)
	if code != exitConfigAccess || !strings.Contains(errOut, "cannot be read") {
		t.Fatalf("unreadable file: code %d %q", code, errOut)
	}
}

func TestServiceConfig(t *testing.T) {
	lin, err := serviceConfig("rel/wbagent.yaml", "linux")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("rel/wbagent.yaml")
	if strings.Join(lin.Arguments, " ") != "run --config "+abs {
		t.Fatalf("arguments: %v", lin.Arguments)
	}
	unit, _ := lin.Option["SystemdScript"].(string)
	for _, want := range []string{"User=wbagent", "ProtectSystem=strict", "NoNewPrivileges=yes", "Restart=on-failure",
		"SystemCallFilter=@system-service", "ExecStart={{Path | cmdEscape}}{{range Arguments}}"} {
		if !strings.Contains(unit, want) {
			t.Errorf("systemd template lacks %q", want)
		}
	}
}
