#!/bin/sh
# Grant wbagent's service account exactly the rights password writeback needs
# on one OU of a Samba AD domain, inherited by the user objects below it:
#   Reset Password   extended right 00299570-246d-11d0-a768-00aa006e0529
#   write lockoutTime             28630ebf-41d5-11d1-a9c1-0000f80367c1
#   write pwdLastSet              bf967a0a-0de6-11d0-a285-00aa003049e2
# each as (OA;CIIO;...;<user class bf967aba-...>;<account SID>), so the OU
# itself and non-user objects gain nothing. Change Password needs no grant:
# AD gives it to Everyone. Do not add the account to Domain Admins or
# Account Operators; wbagent refuses privileged accounts anyway.
#
# Run on a Samba DC as root (local database), once per OU in
# directory.scope.includeOUs:
#   delegate-samba.sh --account svc-writeback --ou "OU=Staff,DC=corp,DC=example,DC=test"
# Against a remote DC, pass samba-tool's connection options after "--":
#   delegate-samba.sh --account svc-writeback --ou "OU=Staff,..." -- -H ldaps://dc1.corp.example.test -U Administrator
# Running it twice is harmless. `wbagent check` verifies the result.
set -eu

usage() {
	echo "usage: $0 --account SAMACCOUNTNAME --ou OU_DN [--dry-run] [-- samba-tool options (-H URL -U USER -s smb.conf)]"
	exit "$1"
}

account=
ou=
dry=
while [ $# -gt 0 ]; do
	case "$1" in
	--account) [ $# -ge 2 ] || usage 2; account=$2; shift 2 ;;
	--ou) [ $# -ge 2 ] || usage 2; ou=$2; shift 2 ;;
	--dry-run) dry=1; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) echo "delegate-samba.sh: unknown argument: $1" >&2; usage 2 ;;
	esac
done
[ -n "$account" ] && [ -n "$ou" ] || usage 2

if ! command -v samba-tool >/dev/null 2>&1; then
	echo "delegate-samba.sh: samba-tool not found: run this on a Samba AD DC (or install python3-samba)" >&2
	exit 1
fi

sid=$(samba-tool user show "$account" --attributes=objectSid "$@" | sed -n 's/^objectSid: //p')
if [ -z "$sid" ]; then
	echo "delegate-samba.sh: cannot read the objectSid of user $account: check the name (sAMAccountName) and the connection options" >&2
	exit 1
fi

user_class=bf967aba-0de6-11d0-a285-00aa003049e2
reset_password=00299570-246d-11d0-a768-00aa006e0529
lockout_time=28630ebf-41d5-11d1-a9c1-0000f80367c1
pwd_last_set=bf967a0a-0de6-11d0-a285-00aa003049e2

current=$(samba-tool dsacl get --objectdn="$ou" "$@")
for ace in \
	"(OA;CIIO;CR;$reset_password;$user_class;$sid)" \
	"(OA;CIIO;WP;$lockout_time;$user_class;$sid)" \
	"(OA;CIIO;WP;$pwd_last_set;$user_class;$sid)"; do
	case "$current" in
	*"$ace"*) echo "already granted on $ou: $ace"; continue ;;
	esac
	if [ -n "$dry" ]; then
		echo "would run: samba-tool dsacl set --objectdn=\"$ou\" --sddl=\"$ace\" $*"
		continue
	fi
	samba-tool dsacl set --objectdn="$ou" --sddl="$ace" "$@" >/dev/null
	echo "granted on $ou: $ace"
done
