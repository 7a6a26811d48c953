package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"wbagent/internal/audit"
)

func writeAuditFile(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := audit.Open(path, audit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if err := w.Record(context.Background(), audit.Record{Event: audit.EventResult, RequestID: "r" + string(rune('a'+i)), Op: "reset", Code: "ok", Agent: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestAuditVerify(t *testing.T) {
	path := writeAuditFile(t, 3)
	out, errOut, code := runCLI(t, "", nil, "audit", "verify", path)
	if code != exitOK || !strings.Contains(out, "3 lines checked, hash chain OK") || !strings.Contains(out, "last hash: ") || errOut != "" {
		t.Fatalf("intact file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}

	data, _ := os.ReadFile(path)
	os.WriteFile(path, []byte(strings.Replace(string(data), `"requestId":"rb"`, `"requestId":"rx"`, 1)), 0o640)
	out, _, code = runCLI(t, "", nil, "audit", "verify", path)
	if code != exitNegative || !strings.Contains(out, "BROKEN at line 2") || !strings.Contains(out, "changed") || !strings.Contains(out, "the line before it verifies") {
		t.Fatalf("tampered file: exit %d, stdout %q", code, out)
	}
}

func TestAuditVerifyErrors(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // in stderr
	}{
		{[]string{"audit", "verify", filepath.Join(t.TempDir(), "missing.jsonl")}, exitError, "no such file"},
		{[]string{"audit", "verify", t.TempDir()}, exitError, "audit verify"},
		{[]string{"audit", "verify"}, exitUsage, "name the audit file"},
		{[]string{"audit", "verify", "a", "b"}, exitUsage, `unexpected argument "a"`},
		{[]string{"audit", "verify", "--bogus", "f"}, exitUsage, "bogus"},
		{[]string{"audit"}, exitUsage, "audit verify FILE"},
		{[]string{"audit", "check"}, exitUsage, `unknown subcommand "check"`},
		{[]string{"audit", "verify", "-h"}, exitOK, "usage: wbagent audit verify FILE"},
		{[]string{"audit", "-h"}, exitOK, "usage: wbagent audit verify FILE"},
	}
	for _, tt := range tests {
		_, errOut, code := runCLI(t, "", nil, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}
