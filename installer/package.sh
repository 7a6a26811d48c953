#!/usr/bin/env bash
# Builds the wbagent packages from the repository: a .deb and an .rpm (nfpm)
# and an .msi (wixl), into OUT (default dist/). Run from anywhere; `make
# package` calls it.
#
#   installer/package.sh [OUT]
#
# Environment:
#   GO               the go command (default: go)
#   GO_LDFLAGS       linker flags for the binaries (the Makefile passes its
#                    version stamping); default stamps the package version
#   PKG_VERSION      force the package version (X.Y.Z, optionally followed by
#                    ~pre and/or +build); default: derived from git describe
#                    by installer/version.sh, which explains the scheme
#   EXAMPLE_CONFIG   the configuration to ship (default config/wbagent.example.yaml)
#   WBAGENT_MAINTAINER  the package maintainer field

set -euo pipefail

die() {
	echo "package: $*" >&2
	exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)
cd "$root"
GO=${GO:-go}
example=${EXAMPLE_CONFIG:-config/wbagent.example.yaml}
export WBAGENT_MAINTAINER=${WBAGENT_MAINTAINER:-wbagent maintainers <maintainers@wbagent.invalid>}

[ -f "$example" ] || die "$example is missing: the packages ship it as /etc/wbagent/wbagent.yaml and %ProgramData%\\wbagent\\wbagent.yaml. Create it (issue 2 describes every key) or point EXAMPLE_CONFIG at one."

# --- tools -------------------------------------------------------------------
need_msi_tools() {
	local t
	for t in wixl wixl-heat msibuild msiinfo; do
		command -v "$t" >/dev/null || return 0
	done
	return 1
}
if need_msi_tools; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "installing wixl and msitools (apt-get)"
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wixl msitools >/dev/null
	else
		die "building the MSI needs wixl, wixl-heat, msibuild and msiinfo. Install them (as root): apt-get install wixl msitools"
	fi
fi

# --- version -----------------------------------------------------------------
read -r version msi_version < <("$root/installer/version.sh") || die "no version (see above)"
export WBAGENT_VERSION=$version
GO_LDFLAGS=${GO_LDFLAGS:--s -w -X wbagent/internal/version.Version=$version}

# --- staging -----------------------------------------------------------------
stage=$(mktemp -d "${TMPDIR:-/tmp}/wbagent-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
export WBAGENT_STAGE=$stage
mkdir -p "$stage/linux" "$stage/windows" "$stage/ad"

echo "package: version $version (MSI $msi_version)"
CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$GO" build -trimpath -ldflags "$GO_LDFLAGS" -o "$stage/linux/wbagent" ./agent
CGO_ENABLED=0 GOOS=windows GOARCH=amd64 "$GO" build -trimpath -ldflags "$GO_LDFLAGS" -o "$stage/windows/wbagent.exe" ./agent

# The example carries the Linux layout. On Windows every file lives under
# %ProgramData%\wbagent, next to the config, and relative paths resolve
# against the config's folder: keys\, senders\, state\, logs\.
cp "$example" "$stage/linux/wbagent.yaml"
sed -e 's#/etc/wbagent/##g' -e 's#/var/lib/wbagent#state#g' -e 's#/var/log/wbagent/#logs/#g' \
	"$example" >"$stage/windows/wbagent.yaml"
if grep -nE '/etc/wbagent|/var/(lib|log)/wbagent' "$stage/windows/wbagent.yaml" >&2; then
	die "the Windows config still names Linux paths (lines above); installer/package.sh maps /etc/wbagent/, /var/lib/wbagent and /var/log/wbagent/ only"
fi

# Debian wants a changelog in every package; it names the build's commit.
if git rev-parse --git-dir >/dev/null 2>&1; then
	commit=$(git rev-parse HEAD)
	when=$(git log -1 --format=%cD HEAD)
else
	commit="(not a git checkout)"
	when=$(date -R)
fi
{
	echo "wbagent ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $commit."
	echo
	echo " -- $WBAGENT_MAINTAINER  $when"
} | gzip -9n >"$stage/changelog.gz"

cp installer/README-install.md "$stage/README-install.md"
cp installer/README-install.md "$stage/windows/README-install.md"
if [ -d installer/ad ] && [ -n "$(find installer/ad -type f -print -quit)" ]; then
	cp -R installer/ad/. "$stage/ad/"
else
	echo "package: warning: installer/ad holds no AD delegation scripts; the packages ship none" >&2
fi
# Modes as a checkout's umask left them would leak into the packages.
find "$stage/ad" -type d -exec chmod 0755 {} +
find "$stage/ad" -type f -perm /111 -exec chmod 0755 {} +
find "$stage/ad" -type f ! -perm /111 -exec chmod 0644 {} +
cp -R "$stage/ad" "$stage/windows/ad"

# --- .deb and .rpm -------------------------------------------------------------
for packager in deb rpm; do
	"$GO" tool nfpm pkg --packager "$packager" --config installer/linux/nfpm.yaml --target "$out/"
done

# --- .msi --------------------------------------------------------------------
# Built in the staging folder and moved to OUT only when complete.
msi=$stage/wbagent.msi
(
	cd "$stage/windows"
	find ad -type f | LC_ALL=C sort |
		wixl-heat -p ad/ --var var.AdDir --directory-ref ADDIR --component-group AdScripts --win64 >ad.wxs
	# wixl warns on stderr about the WiX attributes it ignores; postbuild.sql
	# supplies each of them, so only a failure matters.
	wixl -a x64 -D Version="$msi_version" -D AdDir=ad -D Win64=yes \
		-o "$msi" "$root/installer/windows/wbagent.wxs" ad.wxs 2>wixl.log ||
		{ cat wixl.log >&2; die "wixl failed"; }
)
# One msibuild -q per statement of postbuild.sql.
awk '/^--/ || /^[[:space:]]*$/ {next} {buf = buf $0 " "} /;[[:space:]]*$/ {sub(/;[[:space:]]*$/, "", buf); print buf; buf = ""}' \
	installer/windows/postbuild.sql >"$stage/postbuild.lines"
while IFS= read -r statement; do
	msibuild "$msi" -q "$statement" 2>"$stage/msibuild.log" ||
		{ cat "$stage/msibuild.log" >&2; die "postbuild.sql statement failed: $statement"; }
done <"$stage/postbuild.lines"
mv "$msi" "$out/wbagent-$version-x64.msi"

echo "package: built"
ls -l "$out"/wbagent*"$version"*
