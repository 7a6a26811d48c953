package main

import (
	"context"
	"runtime"
)

// The service-manager commands. Only install takes flags: the config the
// service runs with (the registered command line is `run --service --config
// FILE` on Windows, `run --config FILE` in the systemd unit) and, on
// Windows, the account. The others act on the installed service by name;
// uninstall takes --purge on Windows.
func init() {
	for _, c := range []struct{ name, summary string }{
		{"install", "install wbagent as a system service (systemd unit or Windows service) running `run --config FILE`; again to update it"},
		{"uninstall", "stop and remove the system service (config, keys, state and logs stay; on Windows, --purge deletes them too)"},
		{"start", "start the installed service"},
		{"stop", "stop the installed service"},
		{"restart", "restart the installed service (starts it when stopped)"},
		{"status", "print whether the service is running; exit 0 when running, 3 otherwise"},
	} {
		name := c.name
		register(&command{name: name, summary: c.summary, run: func(ctx context.Context, env *cmdEnv, args []string) error {
			return runServiceCommand(env, name, args)
		}})
	}
}

func runServiceCommand(env *cmdEnv, name string, args []string) error {
	if name != "install" {
		usage := name
		if name == "uninstall" && runtime.GOOS == "windows" {
			usage = "uninstall [--purge]"
		}
		fs := newFlags(env, name, usage)
		// Data goes only when asked, as with the MSI's PURGEDATA=1.
		purge := new(bool)
		if name == "uninstall" && runtime.GOOS == "windows" {
			purge = fs.Bool("purge", false, `also delete %ProgramData%\wbagent: config, keys, state, audit and logs (folders the config names elsewhere stay)`)
		}
		if err := parseFlags(fs, args); err != nil {
			return err
		}
		switch name {
		case "status":
			return serviceStatus(env)
		case "uninstall":
			return serviceUninstall(env, *purge)
		}
		return serviceControl(env, name)
	}
	usage := "install [--config FILE]"
	if runtime.GOOS == "windows" {
		usage = `install [--config FILE] [--account LocalSystem|NT SERVICE\wbagent|DOMAIN\gmsa$]`
	}
	fs := newFlags(env, name, usage)
	cfgPath := fs.String("config", defaultConfigPath(), "config file the service runs with")
	var account *string
	if runtime.GOOS == "windows" {
		account = fs.String("account", "LocalSystem", `account the service runs as: LocalSystem, its virtual account NT SERVICE\wbagent, or a gMSA (DOMAIN\name$)`)
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// Refuse to install a service that would fail at its first start.
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	acct := ""
	if account != nil {
		acct = *account
	}
	return serviceInstall(env, cfg, acct)
}
