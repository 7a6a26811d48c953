#!/bin/sh
# wbagent post-install. Debian calls it as postinst with configure [old
# version], RPM as %post with 1 (install) or 2 (upgrade).
#
# Hands the state, log and key folders to the service account (the .deb ships
# them root-owned; a local dpkg-statoverride wins), reloads systemd, and
# restarts the service on upgrade if it was running. A fresh install does not
# enable or start the service: the configuration and keys come first, then
# `wbagent check`, then `systemctl enable --now wbagent`.
set -e

case "$1" in
configure | 1 | 2) ;;
*) exit 0 ;;
esac

# own OWNER GROUP MODE PATH, unless the administrator has a statoverride.
own() {
	if command -v dpkg-statoverride >/dev/null 2>&1 && dpkg-statoverride --list "$4" >/dev/null 2>&1; then
		return 0
	fi
	chown "$1:$2" "$4"
	chmod "$3" "$4"
}

own wbagent wbagent 0750 /var/lib/wbagent
own wbagent wbagent 0750 /var/log/wbagent
own wbagent wbagent 0700 /etc/wbagent/keys
own root wbagent 0640 /etc/wbagent/wbagent.yaml

# Key files belong to the service account: hand over those created by root
# (e.g. `wbagent keygen` run as root) or left by an erased account (an RPM
# erase keeps the keys and gives them to root). One level, regular files
# only, so no file outside the folder can be reached through a link.
for f in /etc/wbagent/keys/*; do
	if [ -f "$f" ] && [ ! -L "$f" ]; then
		case "$(stat -c %U "$f")" in
		root | UNKNOWN) chown wbagent:wbagent "$f" ;;
		esac
	fi
done

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	upgrade=
	if [ "$1" = 2 ] || { [ "$1" = configure ] && [ -n "$2" ]; }; then
		upgrade=yes
	fi
	if [ -n "$upgrade" ]; then
		systemctl try-restart wbagent.service >/dev/null 2>&1 || true
	fi
fi

exit 0
