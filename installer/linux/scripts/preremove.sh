#!/bin/sh
# wbagent pre-remove. Debian calls it as prerm with remove|upgrade|
# deconfigure|failed-upgrade, RPM as %preun with 0 (erase) or 1 (upgrade).
#
# On removal stops the service and removes its enablement; on upgrade leaves
# it running (the new postinstall restarts it).
set -e

case "$1" in
remove | deconfigure | 0)
	if [ -d /run/systemd/system ]; then
		systemctl stop wbagent.service >/dev/null 2>&1 || true
	fi
	if command -v systemctl >/dev/null 2>&1; then
		systemctl --no-reload disable wbagent.service >/dev/null 2>&1 || true
	fi
	;;
esac

exit 0
