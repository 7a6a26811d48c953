package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// check shows the audit bounds and /readyz's audience, and warns about each
// protection the config turns off.
func TestCheckWarnsAboutAuditAndReadyzChoices(t *testing.T) {
	out, errOut, code := runCLI(t, "", nil, "check", "--offline", "--config", exampleConfig)
	if code != 0 || !strings.Contains(out, "audit rotation") || !strings.Contains(out, "at 64 MB") ||
		!strings.Contains(out, "loopback callers only") || strings.Contains(out, "WARN") && strings.Contains(out, "readyDetails") {
		t.Fatalf("example config: code %d\n%s\n%s", code, out, errOut)
	}
	data, err := os.ReadFile(exampleConfig)
	if err != nil {
		t.Fatal(err)
	}
	data = bytes.Replace(data, []byte("readyDetails: false"), []byte("readyDetails: true"), 1)
	data = bytes.Replace(data, []byte("rotate: {maxSizeMB: 64, maxAge: 0s}"), []byte("rotate: {maxSizeMB: 0, maxAge: 0s}"), 1)
	data = bytes.Replace(data, []byte("aggregateRejections: 1m"), []byte("aggregateRejections: 0s"), 1)
	path := filepath.Join(t.TempDir(), "unsafe.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = runCLI(t, "", nil, "check", "--offline", "--config", path)
	if code != 0 {
		t.Fatalf("code %d\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{"http.readyDetails is true", "grows without bound", "audit.aggregateRejections is 0s"} {
		found := false
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, want) && strings.Contains(l, "WARN") {
				found = true
			}
		}
		if !found {
			t.Errorf("no WARN row saying %q:\n%s", want, out)
		}
	}
}
