//go:build linux

package packaging

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"wbagent/installer"
)

// TestDebLintian: lintian reports neither errors nor warnings; each accepted
// warning has a justified override in installer/linux/lintian-overrides.
func TestDebLintian(t *testing.T) {
	p := packages(t)
	requireTools(t, "lintian")
	out, err := runErr("", nil, "lintian", "--fail-on", "error,warning", p.deb)
	if err != nil {
		t.Fatalf("lintian found problems in the .deb: %v\n%s", err, out)
	}
	t.Logf("lintian: clean\n%s", out)
}

// TestDebContents checks the .deb's files, modes, control fields, conffiles
// and maintainer scripts with dpkg-deb, and its payload against the sources.
func TestDebContents(t *testing.T) {
	p := packages(t)
	requireTools(t, "dpkg-deb")

	// dpkg-deb -c: "drwxr-x--- root/root 0 2026-01-02 03:04 ./var/lib/wbagent/"
	got := map[string]string{} // path -> "mode owner"
	for _, line := range strings.Split(run(t, "", nil, "dpkg-deb", "-c", p.deb), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		path := strings.TrimSuffix(strings.TrimPrefix(f[5], "."), "/")
		got[path] = f[0] + " " + strings.Replace(f[1], "/", ":", 1)
	}
	want := forPackager(layout(t), "deb")
	checkListing(t, "deb", got, want, func(e entry) string {
		return e.mode.String() + " root:root" // the postinst hands folders to wbagent
	})

	info := run(t, "", nil, "dpkg-deb", "-I", p.deb)
	for _, field := range []string{"Package: wbagent", "Version: " + testVersion, "Architecture: amd64", "Depends: passwd"} {
		if !strings.Contains(info, "\n "+field+"\n") {
			t.Errorf("control lacks %q:\n%s", field, info)
		}
	}
	for _, script := range []string{"preinst", "postinst", "prerm", "postrm"} {
		if !strings.Contains(info, " "+script+" ") {
			t.Errorf("control archive lacks %s:\n%s", script, info)
		}
	}
	conffiles := run(t, "", nil, "dpkg-deb", "-I", p.deb, "conffiles")
	if got, want := sortedLines(conffiles), []string{"/etc/default/wbagent", "/etc/wbagent/wbagent.yaml"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("conffiles = %v, want %v", got, want)
	}

	x := t.TempDir()
	run(t, "", nil, "dpkg-deb", "-x", p.deb, x)
	checkPayload(t, x)
}

// checkListing compares a package listing (path -> "mode owner") with the
// expected entries: every expected path present with its mode and owner, and
// no other file (parent folders such as /usr are not listed in want).
func checkListing(t *testing.T, kind string, got map[string]string, want []entry, expect func(entry) string) {
	t.Helper()
	wanted := map[string]bool{}
	for _, e := range want {
		wanted[e.path] = true
		g, ok := got[e.path]
		if !ok {
			t.Errorf("%s lacks %s", kind, e.path)
			continue
		}
		if w := expect(e); g != w {
			t.Errorf("%s %s: got %q, want %q", kind, e.path, g, w)
		}
	}
	for path, g := range got {
		if !wanted[path] && !strings.HasPrefix(g, "d") && path != "" {
			t.Errorf("%s ships an unexpected file %s (%s)", kind, path, g)
		}
	}
}

// checkPayload compares the extracted Linux payload with the sources it
// must carry unchanged.
func checkPayload(t *testing.T, root string) {
	t.Helper()
	repo := repoRoot(t)
	same := func(installed, source string) {
		t.Helper()
		a, err := os.ReadFile(filepath.Join(root, installed))
		if err != nil {
			t.Errorf("payload: %v", err)
			return
		}
		b, err := os.ReadFile(filepath.Join(repo, source))
		if err != nil {
			t.Fatalf("source: %v", err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs from %s", installed, source)
		}
	}
	same("usr/lib/systemd/system/wbagent.service", "installer/linux/wbagent.service")
	same("etc/wbagent/wbagent.yaml", "config/wbagent.example.yaml")
	same("usr/share/doc/wbagent/README-install.md", "installer/README-install.md")
	for _, f := range adScripts(t) {
		same("usr/share/wbagent/ad/"+f.rel, "installer/ad/"+f.rel)
	}
	checkWritablePaths(t, filepath.Join(root, "etc/wbagent/wbagent.yaml"))
	unit, err := os.ReadFile(filepath.Join(root, "usr/lib/systemd/system/wbagent.service"))
	if err == nil && string(unit) != installer.SystemdUnit {
		t.Error("the packaged unit differs from installer.SystemdUnit, which `wbagent install` writes")
	}
	if info, err := os.Stat(filepath.Join(root, "usr/bin/wbagent")); err != nil || info.Size() < 1<<20 {
		t.Errorf("usr/bin/wbagent is missing or too small to be the agent: %v", err)
	}
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// checkWritablePaths: every file the agent writes, as the shipped Linux
// config names it, must lie under the unit's ReadWritePaths, or the
// hardened service cannot write it.
func checkWritablePaths(t *testing.T, path string) {
	t.Helper()
	var cfg struct {
		Agent struct {
			StateDir string `yaml:"stateDir"`
		} `yaml:"agent"`
		Audit struct {
			File string `yaml:"file"`
		} `yaml:"audit"`
		Log struct {
			File struct {
				Path string `yaml:"path"`
			} `yaml:"file"`
		} `yaml:"log"`
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading the packaged config: %v", err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("parsing the packaged config: %v", err)
	}
	writable := []string{"/var/lib/wbagent", "/var/log/wbagent"}
	for key, p := range map[string]string{"agent.stateDir": cfg.Agent.StateDir, "audit.file": cfg.Audit.File, "log.file.path": cfg.Log.File.Path} {
		ok := false
		for _, w := range writable {
			if p == w || strings.HasPrefix(p, w+"/") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("the packaged config's %s is %q, outside the unit's writable paths %v", key, p, writable)
		}
	}
}
