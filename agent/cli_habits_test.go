package main

import (
	"strings"
	"testing"
)

// `wbagent --version` and `-v` print the version, as `wbagent version`.
func TestVersionFlags(t *testing.T) {
	want, _, _ := runCLI(t, "", nil, "version")
	for _, arg := range []string{"--version", "-v", "-version"} {
		out, errOut, code := runCLI(t, "", nil, arg)
		if code != 0 || out != want || !strings.HasPrefix(out, "wbagent ") {
			t.Errorf("%s: code %d, %q (stderr %q), want %q", arg, code, out, errOut, want)
		}
	}
}

// Help lists flags as they are typed: --flag, never -flag.
func TestHelpShowsDoubleDashFlags(t *testing.T) {
	for _, cmd := range []string{"check", "devbus", "keygen", "send"} {
		_, errOut, code := runCLI(t, "", nil, cmd, "--help")
		if code != 0 || !strings.Contains(errOut, "flags:\n  --") {
			t.Errorf("%s --help: code %d\n%s", cmd, code, errOut)
		}
		for _, line := range strings.Split(errOut, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "-") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
				t.Errorf("%s --help shows a single-dash flag: %q", cmd, line)
			}
		}
	}
	out, _, _ := runCLI(t, "", nil, "help")
	if !strings.Contains(out, "--help") || !strings.Contains(out, "--version") {
		t.Errorf("help does not mention --help and --version:\n%s", out)
	}
}
