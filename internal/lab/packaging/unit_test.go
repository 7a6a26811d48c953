//go:build linux

package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` score accepted for
// the unit (0 = fully locked down, 10 = unprotected; 2 and below is "OK").
const maxExposure = 2.0

// TestUnitVerify runs systemd-analyze on the unit as the .deb installs it:
// `verify` must pass, and `security --offline` must rate it at most
// maxExposure. Where systemd-analyze is missing the test is skipped (the
// issue asks for it "where available").
func TestUnitVerify(t *testing.T) {
	p := packages(t)
	requireTools(t, "dpkg-deb")
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed: the unit is not verified on this machine")
	}
	x := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", p.deb, x)
	unit, err := os.ReadFile(filepath.Join(x, "usr/lib/systemd/system/wbagent.service"))
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart exists: point it at the extracted binary.
	text := strings.ReplaceAll(string(unit), "ExecStart=/usr/bin/wbagent ", "ExecStart="+filepath.Join(x, "usr/bin/wbagent")+" ")
	dir := t.TempDir()
	path := filepath.Join(dir, "wbagent.service")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	out, err := runErr("", []string{"SYSTEMD_LOG_LEVEL=notice"}, "systemd-analyze", "verify", path)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = runErr("", nil, "systemd-analyze", "security", "--no-pager", "--offline=yes", path)
	if err != nil && strings.Contains(out, "--offline") {
		t.Logf("this systemd-analyze has no offline security analysis: %s", out)
		return
	}
	if err != nil {
		t.Fatalf("systemd-analyze security --offline=yes: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in systemd-analyze security output:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	if score > maxExposure {
		t.Errorf("unit exposure %.1f > %.1f:\n%s", score, maxExposure, out)
	}
	t.Logf("systemd-analyze security: exposure %.1f", score)
}
