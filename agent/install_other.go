//go:build !windows

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"wbagent/installer"
)

// beforeInstall prepares what the service needs besides its unit.
func beforeInstall(env *cmdEnv) error {
	if runtime.GOOS != "linux" {
		return nil
	}
	return prepareLinuxAccount(env)
}

// afterUninstall leaves the account, config, keys, state and logs in place,
// as the packages' remove (not purge) does.
func afterUninstall() error { return nil }

// prepareLinuxAccount does what the packages' maintainer scripts do: the
// hardened unit runs as a dedicated system account and expects its key
// folder to exist.
func prepareLinuxAccount(env *cmdEnv) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("install needs root: run it with sudo")
	}
	if err := exec.Command("id", "-u", installer.SystemUser).Run(); err != nil {
		out, err := exec.Command("useradd", "--system", "--user-group", "--home-dir", "/var/lib/wbagent",
			"--no-create-home", "--shell", "/usr/sbin/nologin", installer.SystemUser).CombinedOutput()
		if err != nil {
			return fmt.Errorf("create the %s account: %v: %s", installer.SystemUser, err, out)
		}
		fmt.Fprintf(env.stdout, "created system account %s\n", installer.SystemUser)
	}
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{"/etc/wbagent", 0o755}, {"/etc/wbagent/keys", 0o700}} {
		if err := os.MkdirAll(d.path, d.mode); err != nil {
			return fmt.Errorf("create %s: %w", d.path, err)
		}
		if err := os.Chmod(d.path, d.mode); err != nil {
			return fmt.Errorf("set mode of %s: %w", d.path, err)
		}
	}
	if out, err := exec.Command("chown", installer.SystemUser+":"+installer.SystemUser, "/etc/wbagent/keys").CombinedOutput(); err != nil {
		return fmt.Errorf("chown /etc/wbagent/keys: %v: %s", err, out)
	}
	return nil
}
