package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

var sampleRows = []checkRow{
	{Name: "config", OK: true, Detail: "/etc/wbagent/wbagent.yaml (version 1, 1 domain(s), queue password-writeback)"},
	{Name: "service bus queue requets", Detail: "queue requets does not exist in namespace contoso.servicebus.windows.net",
		Fix: "create it, or correct servicebus.queue"},
	{Name: "config warning", OK: true, Warn: true, Detail: "tls.insecureSkipVerify is on", Fix: "give tls.caFile instead"},
	{Name: "signing key", Detail: "private key file /etc/wbagent/keys/a-very-long-folder-name-that-does-not-fit-on-one-line-at-all/agent-sign.key is accessible by group or others (mode 0640)",
		Fix: "chmod 600 /etc/wbagent/keys/agent-sign.key"},
}

// Rows fit 80 columns (a word longer than a line keeps a line of its own),
// each starts with its result, and a FAIL or WARN row carries its fix.
func TestCheckRowsWrapTo80Columns(t *testing.T) {
	var out bytes.Buffer
	p := newCheckPrinter(&cmdEnv{stdout: &out, stderr: &bytes.Buffer{}}, false)
	p.rows(sampleRows)
	if p.finish() {
		t.Fatal("finish reported success with FAIL rows")
	}
	text := out.String()
	for _, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > checkWidth && strings.Contains(strings.TrimSpace(line), " ") {
			t.Errorf("line of %d columns: %q", n, line)
		}
	}
	for _, want := range []string{
		"OK    config: /etc/wbagent/wbagent.yaml",
		"FAIL  service bus queue requets: queue requets does not exist in namespace\n      contoso.servicebus.windows.net\n      fix: create it, or correct servicebus.queue\n",
		"WARN  config warning: tls.insecureSkipVerify is on\n      fix: give tls.caFile instead\n",
		"      fix: chmod 600 /etc/wbagent/keys/agent-sign.key\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("output lacks %q:\n%s", want, text)
		}
	}
}

// --json prints one document of the documented shape.
func TestCheckJSON(t *testing.T) {
	var out bytes.Buffer
	p := newCheckPrinter(&cmdEnv{stdout: &out, stderr: &bytes.Buffer{}}, true)
	p.rows(sampleRows[:2])
	p.finish()
	var doc struct {
		OK   bool           `json:"ok"`
		Rows []checkRowJSON `json:"rows"`
	}
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if dec.More() {
		t.Fatal("more than one JSON document")
	}
	want := []checkRowJSON{
		{Check: "config", Result: "OK", Detail: sampleRows[0].Detail},
		{Check: "service bus queue requets", Result: "FAIL", Detail: sampleRows[1].Detail, Fix: "create it, or correct servicebus.queue"},
	}
	if doc.OK || len(doc.Rows) != 2 || doc.Rows[0] != want[0] || doc.Rows[1] != want[1] {
		t.Fatalf("got %+v", doc)
	}
}

// `check --json` end to end: a config that does not load is still one
// document, with the config row failed.
func TestCheckJSONCommand(t *testing.T) {
	out, _, code := runCLI(t, "", nil, "check", "--offline", "--json", "--config", exampleConfig)
	var doc struct {
		OK   bool           `json:"ok"`
		Rows []checkRowJSON `json:"rows"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != 0 || !doc.OK || doc.Rows[0].Check != "config" {
		t.Fatalf("code %d, %v: %s", code, err, out)
	}
	out, _, code = runCLI(t, "", nil, "check", "--offline", "--json", "--config", "/nonexistent/wbagent.yaml")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != exitConfigMissing || doc.OK || doc.Rows[0].Result != "FAIL" {
		t.Fatalf("code %d, %v: %s", code, err, out)
	}
}
