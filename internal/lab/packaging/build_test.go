//go:build linux

package packaging

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// testVersion is the version the packages are built with, so file names and
// the MSI version are known; the git-derived scheme is tested in version_test.go.
const (
	testVersion    = "1.2.3+t.4"
	testMSIVersion = "1.2.3"
)

// outDir receives the packages; TestMain creates and removes it.
var outDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "wbagent-packaging-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "packaging tests: cannot create the output folder:", err)
		os.Exit(1)
	}
	outDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the repository root (two levels above this package).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := findRepo()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func findRepo() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the test source, so not the repository either")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..")), nil
}

// requireTools fails the test naming the Debian package that provides each
// missing tool.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	providers := map[string]string{
		"lintian": "lintian", "dpkg-deb": "dpkg", "rpm": "rpm", "debootstrap": "debootstrap",
		"wixl": "wixl", "wixl-heat": "wixl", "msibuild": "msitools", "msiinfo": "msitools",
		"msiextract": "msitools", "chroot": "coreutils", "tar": "tar", "git": "git", "bash": "bash",
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, providers[tool])
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing tools: install them (as root): apt-get install %s", strings.Join(missing, " "))
	}
}

// requireRoot fails the test when it cannot change file owners or chroot.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test installs packages into a throwaway root with chroot and needs root: run make test as root")
	}
}

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and installs packages; skipped with -short")
	}
}

// run runs a command and returns its standard output; a failure fails the
// test with the command's output.
func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	out, err := runErr(dir, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr runs a command with a time limit and returns its combined output.
func runErr(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

// built names the packages of one package.sh run.
type built struct {
	deb, rpm, msi string
}

// buildPackages runs installer/package.sh once per test binary; every test
// that needs the packages shares the run.
var buildPackages = sync.OnceValues(func() (built, error) {
	root, err := findRepo()
	if err != nil {
		return built{}, err
	}
	out, err := runErr(root, []string{"PKG_VERSION=" + testVersion}, "installer/package.sh", outDir)
	if err != nil {
		return built{}, fmt.Errorf("installer/package.sh: %v\n%s", err, out)
	}
	b := built{
		deb: filepath.Join(outDir, "wbagent_"+testVersion+"_amd64.deb"),
		rpm: filepath.Join(outDir, "wbagent-"+testVersion+"-1.x86_64.rpm"),
		msi: filepath.Join(outDir, "wbagent-"+testVersion+"-x64.msi"),
	}
	for _, p := range []string{b.deb, b.rpm, b.msi} {
		if _, err := os.Stat(p); err != nil {
			return built{}, fmt.Errorf("package.sh did not produce %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
	return b, nil
})

// packages returns the three packages, building them on first use.
func packages(t *testing.T) built {
	t.Helper()
	skipShort(t)
	requireTools(t, "bash", "wixl", "wixl-heat", "msibuild", "msiinfo")
	b, err := buildPackages()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// entry is one path the Linux packages install.
type entry struct {
	path     string
	mode     fs.FileMode
	owner    string // user:group once installed (the .rpm carries it; the .deb's postinst sets it)
	packager string // "" for both, or "deb" / "rpm"
}

// layout is the contract of issue 8 for the Linux packages, plus the
// delegation scripts found in installer/ad.
func layout(t *testing.T) []entry {
	t.Helper()
	const dir = fs.ModeDir
	l := []entry{
		{"/usr/bin/wbagent", 0o755, "root:root", ""},
		{"/usr/lib/systemd/system/wbagent.service", 0o644, "root:root", ""},
		{"/etc/wbagent", dir | 0o755, "root:root", ""},
		{"/etc/wbagent/wbagent.yaml", 0o640, "root:wbagent", ""},
		{"/etc/wbagent/keys", dir | 0o700, "wbagent:wbagent", ""},
		{"/etc/wbagent/senders", dir | 0o755, "root:root", ""},
		{"/var/lib/wbagent", dir | 0o750, "wbagent:wbagent", ""},
		{"/var/log/wbagent", dir | 0o750, "wbagent:wbagent", ""},
		{"/etc/default/wbagent", 0o600, "root:root", "deb"},
		{"/etc/sysconfig/wbagent", 0o600, "root:root", "rpm"},
		{"/usr/share/doc/wbagent/README-install.md", 0o644, "root:root", ""},
		{"/usr/share/doc/wbagent/copyright", 0o644, "root:root", ""},
		{"/usr/share/doc/wbagent/changelog.gz", 0o644, "root:root", "deb"},
		{"/usr/share/lintian/overrides/wbagent", 0o644, "root:root", "deb"},
		{"/usr/share/wbagent/ad", dir | 0o755, "root:root", ""},
	}
	for _, f := range adScripts(t) {
		l = append(l, entry{"/usr/share/wbagent/ad/" + f.rel, f.mode, "root:root", ""})
	}
	return l
}

// forPackager returns the entries one packager ships.
func forPackager(l []entry, packager string) []entry {
	var out []entry
	for _, e := range l {
		if e.packager == "" || e.packager == packager {
			out = append(out, e)
		}
	}
	return out
}

type adFile struct {
	rel  string
	mode fs.FileMode
	data []byte
}

// adScripts lists installer/ad, which the packages must ship as they find it.
func adScripts(t *testing.T) []adFile {
	t.Helper()
	base := filepath.Join(repoRoot(t), "installer", "ad")
	var files []adFile
	err := filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(base, p)
		mode := fs.FileMode(0o644) // package.sh normalises: executable or not
		if info.Mode()&0o111 != 0 {
			mode = 0o755
		}
		files = append(files, adFile{rel: filepath.ToSlash(rel), mode: mode, data: data})
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatalf("reading installer/ad: %v", err)
	}
	return files
}
