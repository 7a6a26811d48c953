//go:build !windows

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"github.com/kardianos/service"

	"wbagent/installer"
	"wbagent/internal/config"
)

// serviceInstall installs the systemd unit (or the system's equivalent)
// through kardianos/service, after what the packages' scripts do.
func serviceInstall(env *cmdEnv, cfg *config.Config, _ string) error {
	s, err := newService(serviceProgram{}, cfg.Path)
	if err != nil {
		return err
	}
	if runtime.GOOS == "linux" {
		if err := prepareLinuxAccount(env); err != nil {
			return err
		}
	}
	return kardianosControl(env, s, "install")
}

// serviceUninstall removes the unit. The account, config, keys, state and
// logs stay, as the packages' remove (not purge) does; purge is a Windows
// flag (the packages' purge deletes the data here).
func serviceUninstall(env *cmdEnv, _ bool) error {
	s, err := newService(serviceProgram{}, defaultConfigPath())
	if err != nil {
		return err
	}
	return kardianosControl(env, s, "uninstall")
}

// serviceControl starts, stops or restarts the unit.
func serviceControl(env *cmdEnv, verb string) error {
	s, err := newService(serviceProgram{}, defaultConfigPath())
	if err != nil {
		return err
	}
	return kardianosControl(env, s, verb)
}

func kardianosControl(env *cmdEnv, s service.Service, verb string) error {
	if err := service.Control(s, verb); err != nil {
		return fmt.Errorf("service %s: %w", verb, err)
	}
	fmt.Fprintf(env.stdout, "service %s: %s done\n", serviceName, verb)
	return nil
}

// serviceStatus prints whether the unit runs: exit 0 when running, 3 when
// stopped or not installed.
func serviceStatus(env *cmdEnv) error {
	s, err := newService(serviceProgram{}, defaultConfigPath())
	if err != nil {
		return err
	}
	st, err := s.Status()
	if err != nil {
		if errors.Is(err, service.ErrNotInstalled) {
			fmt.Fprintln(env.stdout, "not installed")
			return withCode(exitNegative, nil)
		}
		return fmt.Errorf("service status: %w", err)
	}
	if st == service.StatusRunning {
		fmt.Fprintln(env.stdout, "running")
		return nil
	}
	fmt.Fprintln(env.stdout, "stopped")
	return withCode(exitNegative, nil)
}

// serviceProgram is the do-nothing Interface kardianos needs to build a
// control handle; the real program is only built by `run`.
type serviceProgram struct{}

func (serviceProgram) Start(service.Service) error { return nil }
func (serviceProgram) Stop(service.Service) error  { return nil }

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
