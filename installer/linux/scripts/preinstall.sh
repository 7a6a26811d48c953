#!/bin/sh
# wbagent pre-install. Debian calls it as preinst with install|upgrade, RPM
# as %pre with 1 (install) or 2 (upgrade).
#
# Creates the wbagent system group and user before the files are unpacked, so
# that the RPM's file owners resolve and the Debian postinst can hand the
# state, log and key folders to the service account. Idempotent.
set -e

case "$1" in
install | upgrade | 1 | 2)
	if ! getent group wbagent >/dev/null; then
		groupadd --system wbagent
	fi
	if ! getent passwd wbagent >/dev/null; then
		useradd --system --gid wbagent --home-dir /var/lib/wbagent --no-create-home \
			--shell /usr/sbin/nologin --comment "wbagent password writeback agent" wbagent
	fi
	;;
esac

exit 0
