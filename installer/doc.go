// Package installer holds the plain files the Linux and Windows packages are
// built from (systemd unit, nfpm config, maintainer scripts, WiX source) and
// exposes the systemd unit to the agent, so that `wbagent install` — the
// no-package path through kardianos/service — writes the same hardened unit
// the .deb and .rpm ship.
//
// linux/wbagent.service is the single source: a plain unit with the
// packaged paths (/usr/bin/wbagent, /etc/wbagent/wbagent.yaml) that
// `systemd-analyze verify` checks as is. SystemdScript turns it into a
// kardianos SystemdScript template by replacing only the ExecStart line.
//
// Use from the agent:
//
//	svcConfig.Option = service.KeyValue{"SystemdScript": installer.SystemdScript()}
//
// The template reads these kardianos variables and no others:
//
//	{{Path}}       the executable (Config.Executable, or the running binary)
//	{{Arguments}}  Config.Arguments, e.g. run --config /etc/wbagent/wbagent.yaml
//	{{EnvVars}}    Config.EnvVars as Environment= lines
//
// Everything else is fixed by the unit: User=wbagent (Config.UserName is not
// used, because the hardening assumes the dedicated account), Restart=on-failure,
// and the writable paths /var/lib/wbagent and /var/log/wbagent, which systemd
// creates owned by the service user (StateDirectory=, LogsDirectory=). What
// the unit does not create is the account itself and /etc/wbagent/keys: the
// packages' maintainer scripts do that, and `wbagent install` must do the
// same before starting the service (see SystemUser).
package installer
