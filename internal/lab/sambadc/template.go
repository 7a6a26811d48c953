package sambadc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// templateFormat changes whenever the way templates are made changes, so an
// old cache is never reused.
const templateFormat = "2"

// hostName is the DC's short name in every provisioned domain.
const hostName = "dc1"

// Files in a template directory that are not part of the DC's state.
const (
	adminPassFile = "adminpass"
	readyMarker   = "template.ok"
)

// sambaVersion returns `samba --version`, or an error telling what to
// install when Samba is missing.
func sambaVersion(ctx context.Context) (string, error) {
	for _, bin := range []string{"samba", "samba-tool"} {
		if _, err := exec.LookPath(bin); err != nil {
			return "", fmt.Errorf("%s not found: install the Samba AD DC packages with `make deps` (apt-get install samba samba-ad-dc samba-ad-provision samba-dsdb-modules python3-samba ldap-utils krb5-user winbind)", bin)
		}
	}
	out, err := exec.CommandContext(ctx, "samba", "--version").Output()
	if err != nil {
		return "", fmt.Errorf("run samba --version (reinstall Samba with `make deps`): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// template returns the directory of a provisioned domain for realm and
// netbios, provisioning it on first use. Concurrent test processes wait on
// a flock instead of provisioning twice.
func template(ctx context.Context, cacheDir, realm, netbios string) (string, error) {
	version, err := sambaVersion(ctx)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(templateFormat + "\x00" + version + "\x00" + strings.ToLower(realm) + "\x00" + strings.ToUpper(netbios)))
	key := hex.EncodeToString(sum[:6])
	base := filepath.Join(cacheDir, "templates")
	if err := os.MkdirAll(base, 0o700); err != nil {
		return "", fmt.Errorf("create template cache %s: %w", base, err)
	}
	dir := filepath.Join(base, key)
	lockFile, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", fmt.Errorf("open template lock: %w", err)
	}
	defer lockFile.Close()
	if err := lock(lockFile, true); err != nil {
		return "", fmt.Errorf("lock template cache: %w", err)
	}
	if _, err := os.Stat(filepath.Join(dir, readyMarker)); err == nil {
		return dir, nil
	}
	_ = os.RemoveAll(dir)
	tmp, err := os.MkdirTemp(base, key+".tmp-")
	if err != nil {
		return "", fmt.Errorf("create provisioning directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	pass := randomPassword()
	cmd := exec.CommandContext(ctx, "samba-tool", "domain", "provision",
		"--realm="+strings.ToUpper(realm), "--domain="+strings.ToUpper(netbios),
		"--server-role=dc", "--dns-backend=NONE",
		"--adminpass="+pass, "--targetdir="+tmp, "--host-name="+hostName,
		"--host-ip=127.0.0.1", "--option=interfaces=lo", "--option=bind interfaces only=yes")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("provision domain %s with samba-tool (see output; reinstall Samba with `make deps` if it is broken): %w\n%s", realm, err, tail(string(out), 2000))
	}
	// A Windows DC registers its LDAP service principals itself; Samba
	// leaves that to samba_spnupdate, which the harness does not run.
	// Kerberos binds ask for ldap/<host>, so add them here.
	fqdn := hostName + "." + strings.ToLower(realm)
	for _, spn := range []string{"ldap/" + fqdn, "ldap/" + strings.ToUpper(hostName), "ldap/" + fqdn + "/" + strings.ToLower(realm),
		"ldap/" + fqdn + "/" + strings.ToUpper(netbios), "GC/" + fqdn + "/" + strings.ToLower(realm)} {
		out, err := exec.CommandContext(ctx, "samba-tool", "spn", "add", spn, strings.ToUpper(hostName)+"$",
			"-s", filepath.Join(tmp, "etc", "smb.conf"), "-H", "tdb://"+filepath.Join(tmp, "private", "sam.ldb")).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("add service principal %s to the template: %w\n%s", spn, err, tail(string(out), 1000))
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, adminPassFile), []byte(pass), 0o600); err != nil {
		return "", fmt.Errorf("store template admin password: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, readyMarker), []byte(version+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("mark template ready: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("move template into place: %w", err)
	}
	return dir, nil
}

// randomPassword makes an Administrator password that meets AD's default
// complexity rules (three character classes, at least 7 characters).
func randomPassword() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic("sambadc: crypto/rand failed: " + err.Error())
	}
	return "Adm1n-" + hex.EncodeToString(b) + "-X"
}

// copyTree copies the template at src to dst, leaving out the harness's own
// files and the template's smb.conf (each DC writes its own).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		switch rel {
		case adminPassFile, readyMarker, filepath.Join("etc", "smb.conf"):
			return nil
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, info.Mode().Perm())
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(path, target, info.Mode().Perm())
		default:
			return nil // sockets and fifos belong to a running Samba, not to the template
		}
	})
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

var errStopped = errors.New("the DC is stopped")
