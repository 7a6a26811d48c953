#!/bin/sh
# wbagent post-remove. Debian calls it as postrm with remove|purge|upgrade|
# failed-upgrade|abort-install|abort-upgrade|disappear, RPM as %postun with
# 0 (erase) or 1 (upgrade).
#
# Debian "remove" keeps configuration, keys, state, logs and the account;
# "purge" deletes all of them. RPM has no purge: an erase (0) deletes state,
# logs (including the audit log) and the account, and keeps /etc/wbagent —
# a changed wbagent.yaml is saved as wbagent.yaml.rpmsave and the keys stay,
# owned by root until a reinstall hands them to the new account.
set -e

remove_account() {
	if getent passwd wbagent >/dev/null; then
		userdel wbagent >/dev/null 2>&1 || true
	fi
	if getent group wbagent >/dev/null; then
		groupdel wbagent >/dev/null 2>&1 || true
	fi
}

case "$1" in
purge)
	rm -rf /var/lib/wbagent /var/log/wbagent /etc/wbagent
	remove_account
	;;
0)
	rm -rf /var/lib/wbagent /var/log/wbagent
	# What stays in /etc/wbagent must not keep the account's uid or gid,
	# which a future account could be given: hand it to root.
	for f in /etc/wbagent/* /etc/wbagent/keys/* /etc/wbagent/senders/*; do
		if [ -e "$f" ] && [ ! -L "$f" ]; then
			case "$(stat -c %U:%G "$f")" in
			*wbagent*) chown root:root "$f" ;;
			esac
		fi
	done
	remove_account
	;;
esac

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac

exit 0
