package logging

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestJSONToStderrAndFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "logs", "wbagent.log")
	var buf bytes.Buffer
	l, err := New(Options{Level: "debug", File: FileOptions{Path: path, MaxSizeMB: 1}}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hello")
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	// After an external rotation moved the file away, the next line recreates it.
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	l.Info("after reopen")
	_ = l.Close()
	var line map[string]any
	if err := json.Unmarshal(bytes.Split(buf.Bytes(), []byte("\n"))[0], &line); err != nil {
		t.Fatalf("stderr is not JSON: %v: %q", err, buf.String())
	}
	if line["msg"] != "hello" || line["level"] != "debug" {
		t.Fatalf("unexpected line %v", line)
	}
	b, err := os.ReadFile(path)
	if err != nil || !strings.Contains(string(b), "after reopen") {
		t.Fatalf("reopened file: %v %q", err, b)
	}
}

func TestBadLevelFallsBackWithWarning(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(Options{Level: "verbose", Format: "console"}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	l.Debug("hidden")
	l.Info("shown")
	out := buf.String()
	if !strings.Contains(out, "log.level is not known") || strings.Contains(out, "hidden") || !strings.Contains(out, "shown") {
		t.Fatalf("unexpected output %q", out)
	}
}

func TestBadFormat(t *testing.T) {
	if _, err := New(Options{Format: "xml"}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "json or console") {
		t.Fatalf("want a format error, got %v", err)
	}
}
