//go:build linux

package packaging

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestDebInstallCheckPurge installs the .deb into a throwaway Debian root,
// checks the installed layout and owners, runs the installed
// `wbagent check --offline` as the service account, reinstalls over a
// changed configuration (kept), removes (configuration, data and account
// kept) and purges (all gone).
func TestDebInstallCheckPurge(t *testing.T) {
	p := packages(t)
	requireRoot(t)
	requireTools(t, "chroot", "tar", "debootstrap")
	root := newRoot(t)
	copyInto(t, p.deb, root, "tmp/wbagent.deb")

	chroot(t, root, "dpkg", "-i", "/tmp/wbagent.deb")
	checkInstalled(t, root, forPackager(layout(t), "deb"))
	checkOffline(t, root)

	// A changed conffile survives a reinstall.
	appendLine(t, filepath.Join(root, "etc/wbagent/wbagent.yaml"), "# changed by the administrator")
	chroot(t, root, "dpkg", "-i", "/tmp/wbagent.deb")
	if !strings.Contains(readFile(t, filepath.Join(root, "etc/wbagent/wbagent.yaml")), "# changed by the administrator") {
		t.Error("reinstalling replaced the administrator's /etc/wbagent/wbagent.yaml")
	}

	// What the running agent and the administrator leave behind.
	writeFile(t, root, "var/lib/wbagent/ledger.db", "wbagent")
	writeFile(t, root, "var/log/wbagent/audit.jsonl", "wbagent")
	writeFile(t, root, "etc/wbagent/keys/agent-hpke.key", "root") // keygen run as root

	chroot(t, root, "dpkg", "-r", "wbagent")
	for _, kept := range []string{"etc/wbagent/wbagent.yaml", "etc/wbagent/keys/agent-hpke.key", "var/lib/wbagent/ledger.db", "var/log/wbagent/audit.jsonl"} {
		if _, err := os.Lstat(filepath.Join(root, kept)); err != nil {
			t.Errorf("dpkg -r removed /%s: %v", kept, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(root, "usr/bin/wbagent")); err == nil {
		t.Error("dpkg -r left /usr/bin/wbagent")
	}
	if _, ok := lookupID(t, root, "passwd", "wbagent"); !ok {
		t.Error("dpkg -r removed the wbagent account")
	}

	chroot(t, root, "dpkg", "-P", "wbagent")
	for _, gone := range []string{"etc/wbagent", "var/lib/wbagent", "var/log/wbagent", "usr/lib/systemd/system/wbagent.service"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("dpkg -P left /%s", gone)
		}
	}
	if _, ok := lookupID(t, root, "passwd", "wbagent"); ok {
		t.Error("dpkg -P left the wbagent user")
	}
	if _, ok := lookupID(t, root, "group", "wbagent"); ok {
		t.Error("dpkg -P left the wbagent group")
	}
}

// TestRPMInstallErase installs the .rpm into a throwaway Debian root with
// rpm --root (the scriptlets run chrooted there), checks the layout, owners
// and `wbagent check --offline`, then erases it: state, logs and account
// go; /etc/wbagent stays, the changed config as .rpmsave, all owned by root;
// a reinstall hands the kept keys to the new account.
func TestRPMInstallErase(t *testing.T) {
	p := packages(t)
	requireRoot(t)
	requireTools(t, "chroot", "tar", "debootstrap", "rpm")
	root := newRoot(t)
	rpm := func(args ...string) {
		t.Helper()
		run(t, "", nil, "rpm", append([]string{"--root", root, "--nodeps"}, args...)...)
	}

	rpm("-i", p.rpm)
	checkInstalled(t, root, forPackager(layout(t), "rpm"))
	checkOffline(t, root)

	appendLine(t, filepath.Join(root, "etc/wbagent/wbagent.yaml"), "# changed by the administrator")
	writeFile(t, root, "var/lib/wbagent/ledger.db", "wbagent")
	writeFile(t, root, "etc/wbagent/keys/agent-hpke.key", "wbagent")

	rpm("-e", "wbagent")
	for _, gone := range []string{"var/lib/wbagent", "var/log/wbagent", "usr/bin/wbagent", "etc/wbagent/wbagent.yaml"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); err == nil {
			t.Errorf("rpm -e left /%s", gone)
		}
	}
	if _, ok := lookupID(t, root, "passwd", "wbagent"); ok {
		t.Error("rpm -e left the wbagent user")
	}
	for _, kept := range []string{"etc/wbagent/wbagent.yaml.rpmsave", "etc/wbagent/keys", "etc/wbagent/keys/agent-hpke.key"} {
		path := filepath.Join(root, kept)
		if got := ownerOf(t, root, path); got != "root:root" {
			t.Errorf("after rpm -e, /%s is owned by %q, want it kept and owned by root:root", kept, got)
		}
	}

	rpm("-i", p.rpm)
	if got := ownerOf(t, root, filepath.Join(root, "etc/wbagent/keys/agent-hpke.key")); got != "wbagent:wbagent" {
		t.Errorf("after a reinstall the kept key is owned by %q, want wbagent:wbagent", got)
	}
}

// checkInstalled compares the installed files with the layout.
func checkInstalled(t *testing.T, root string, want []entry) {
	t.Helper()
	for _, e := range want {
		path := filepath.Join(root, e.path)
		info, err := os.Lstat(path)
		if err != nil {
			t.Errorf("installed: %v", err)
			continue
		}
		if got := info.Mode() & (fs.ModeDir | fs.ModePerm); got != e.mode {
			t.Errorf("installed %s: mode %v, want %v", e.path, got, e.mode)
		}
		if got := ownerOf(t, root, path); got != e.owner {
			t.Errorf("installed %s: owner %s, want %s", e.path, got, e.owner)
		}
	}
}

// checkOffline runs the installed agent's offline config check as the
// service account, which also proves the account can read its config.
func checkOffline(t *testing.T, root string) {
	t.Helper()
	out, err := runErr("", nil, "chroot", root, "runuser", "-u", "wbagent", "--",
		"/usr/bin/wbagent", "check", "--offline", "--config", "/etc/wbagent/wbagent.yaml")
	if err != nil {
		t.Errorf("installed `wbagent check --offline --config /etc/wbagent/wbagent.yaml` as wbagent failed: %v\n%s", err, out)
		return
	}
	t.Logf("wbagent check --offline:\n%s", out)
}

// ownerOf names the owner and group of path by the root's own account files.
func ownerOf(t *testing.T, root, path string) string {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		return "missing"
	}
	st := info.Sys().(*syscall.Stat_t)
	user, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if name, ok := nameOf(t, root, "passwd", st.Uid); ok {
		user = name
	}
	if name, ok := nameOf(t, root, "group", st.Gid); ok {
		group = name
	}
	return user + ":" + group
}

// accounts reads root/etc/passwd or root/etc/group as name -> id.
func accounts(t *testing.T, root, file string) map[string]uint32 {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "etc", file))
	if err != nil {
		t.Fatalf("reading the root's %s: %v", file, err)
	}
	defer f.Close()
	ids := map[string]uint32{}
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if id, err := strconv.ParseUint(fields[2], 10, 32); err == nil {
			ids[fields[0]] = uint32(id)
		}
	}
	return ids
}

func lookupID(t *testing.T, root, file, name string) (uint32, bool) {
	t.Helper()
	id, ok := accounts(t, root, file)[name]
	return id, ok
}

func nameOf(t *testing.T, root, file string, id uint32) (string, bool) {
	t.Helper()
	for name, i := range accounts(t, root, file) {
		if i == id {
			return name, true
		}
	}
	return "", false
}

// writeFile creates rel under root with content, owned by the root's account
// owner (user and group of the same name).
func writeFile(t *testing.T, root, rel, owner string) {
	t.Helper()
	path := filepath.Join(root, rel)
	if err := os.WriteFile(path, []byte("test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	uid, ok1 := lookupID(t, root, "passwd", owner)
	gid, ok2 := lookupID(t, root, "group", owner)
	if !ok1 || !ok2 {
		t.Fatalf("the root has no account %s", owner)
	}
	if err := os.Chown(path, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, line); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func copyInto(t *testing.T, src, root, rel string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, rel), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func chroot(t *testing.T, root string, args ...string) string {
	t.Helper()
	return run(t, "", []string{"DEBIAN_FRONTEND=noninteractive"}, "chroot", append([]string{root}, args...)...)
}

// newRoot extracts a fresh copy of the cached Debian base into a temporary
// folder.
func newRoot(t *testing.T) string {
	t.Helper()
	tarball := debianBase(t)
	root := t.TempDir()
	run(t, "", nil, "tar", "-C", root, "-xpf", tarball)
	// t.TempDir is 0700; as "/" of the chroot it must let the service account through.
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

// debianBase returns a tarball of a minimal Debian root (debootstrap
// --variant=minbase), cached for the day under the user's cache folder as
// wbagent/debian-base/<suite>-minbase-<YYYYMMDD>.tar; older ones are removed.
// The suite is the host's when it is Debian, else bookworm;
// WBAGENT_DEBIAN_MIRROR overrides the mirror (default deb.debian.org).
func debianBase(t *testing.T) string {
	t.Helper()
	path, err := debianBaseOnce()
	if err != nil {
		t.Fatal(err)
	}
	return path
}

var debianBaseOnce = sync.OnceValues(buildDebianBase)

func buildDebianBase() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for the Debian base: %w", err)
	}
	dir := filepath.Join(cache, "wbagent", "debian-base")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating the Debian base cache: %w", err)
	}
	suite := hostDebianSuite()
	name := fmt.Sprintf("%s-minbase-%s.tar", suite, time.Now().UTC().Format("20060102"))
	path := filepath.Join(dir, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	mirror := os.Getenv("WBAGENT_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	tree, err := os.MkdirTemp(dir, "tree-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tree)
	if out, err := runErr("", nil, "debootstrap", "--variant=minbase", suite, tree, mirror); err != nil {
		return "", fmt.Errorf("debootstrap --variant=minbase %s from %s failed (it needs the Debian mirror; set WBAGENT_DEBIAN_MIRROR for another): %v\n%s", suite, mirror, err, lastLines(out, 20))
	}
	tmp := path + ".tmp"
	if out, err := runErr("", nil, "tar", "-C", tree, "-cf", tmp, "."); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("packing the Debian base: %v\n%s", err, out)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*-minbase-*.tar"))
	for _, o := range old {
		if o != path {
			os.Remove(o)
		}
	}
	return path, nil
}

// hostDebianSuite is the host's Debian codename, or bookworm elsewhere.
func hostDebianSuite() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "bookworm"
	}
	var id, codename string
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "ID="); ok {
			id = strings.Trim(v, `"`)
		}
		if v, ok := strings.CutPrefix(l, "VERSION_CODENAME="); ok {
			codename = strings.Trim(v, `"`)
		}
	}
	if id == "debian" && codename != "" {
		return codename
	}
	return "bookworm"
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
