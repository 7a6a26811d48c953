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
		{[]string{"audit", "verify", "-h"}, exitOK, "usage: wbagent audit verify [-from HASH] FILE"},
		{[]string{"audit", "-h"}, exitOK, "usage: wbagent audit verify [-from HASH] FILE"},
	}
	for _, tt := range tests {
		_, errOut, code := runCLI(t, "", nil, tt.args...)
		if code != tt.code || !strings.Contains(errOut, tt.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", tt.args, code, errOut, tt.code, tt.want)
		}
	}
}

// A rotated set is checked as one chain; a rotated file taken away breaks
// it, and -from lets an archived start be skipped.
func TestAuditVerifyRotatedSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	w, err := audit.Open(path, audit.Options{MaxSize: 600})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		if err := w.Record(context.Background(), audit.Record{Event: audit.EventResult, RequestID: "r" + string(rune('a'+i)), Op: "reset", Code: "ok", Agent: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rotated, err := audit.RotatedFiles(path)
	if err != nil || len(rotated) < 2 {
		t.Fatalf("rotated %v, %v; want at least 2", rotated, err)
	}
	out, errOut, code := runCLI(t, "", nil, "audit", "verify", path)
	if code != exitOK || !strings.Contains(out, "12 lines checked, hash chain OK") || !strings.Contains(out, "rotated files") {
		t.Fatalf("intact set: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	// The first file's last hash lets the rest be checked without it.
	first, _ := os.Open(rotated[0])
	rep, _ := audit.Verify(first)
	first.Close()
	if err := os.Rename(rotated[0], rotated[0]+".archived"); err != nil {
		t.Fatal(err)
	}
	out, _, code = runCLI(t, "", nil, "audit", "verify", path)
	if code != exitNegative || !strings.Contains(out, "BROKEN at line 1") {
		t.Fatalf("set without its first file: exit %d, stdout %q", code, out)
	}
	out, _, code = runCLI(t, "", nil, "audit", "verify", "-from", rep.Last, path)
	if code != exitOK || !strings.Contains(out, "hash chain OK") {
		t.Fatalf("set with -from: exit %d, stdout %q", code, out)
	}
	if _, errOut, code := runCLI(t, "", nil, "audit", "verify", "-from", "xyz", path); code != exitUsage || !strings.Contains(errOut, "not a hash") {
		t.Fatalf("bad -from: exit %d, stderr %q", code, errOut)
	}
}
