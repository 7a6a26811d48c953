#!/usr/bin/env bash
# Prints the package version and the MSI version, separated by a space, for
# the git checkout in the current folder (or PKG_VERSION when set):
#
#   tag vX.Y.Z on HEAD            X.Y.Z                 MSI X.Y.Z
#   N commits after vX.Y.Z        X.Y.Z+N.g<sha>        MSI X.Y.Z
#   tag vX.Y.Z-rc1 (pre-release)  X.Y.Z~rc1[+N.g<sha>]  MSI X.Y.Z
#   no tag, C commits in all      0.0.C+g<sha>          MSI 0.0.C
#   uncommitted changes           ... plus ".dirty" in the build part
#
# "~" sorts before the release in dpkg and rpm; "+" after it. Windows
# Installer versions are N.N.N, at most 255.255.65535, and an upgrade between
# builds of the same N.N.N is allowed by the MSI (see postbuild.sql).
set -euo pipefail

die() {
	echo "version: $*" >&2
	exit 1
}

if [ -n "${PKG_VERSION:-}" ]; then
	version=$PKG_VERSION
else
	git rev-parse --git-dir >/dev/null 2>&1 || die "not a git checkout, so no version can be derived: set PKG_VERSION=X.Y.Z"
	sha=$(git rev-parse --short=7 HEAD)
	dirty=
	if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		dirty=.dirty
	fi
	if desc=$(git describe --tags --match 'v[0-9]*' --long 2>/dev/null) &&
		[[ $desc =~ ^v([0-9]+\.[0-9]+\.[0-9]+)(-([0-9A-Za-z.]+))?-([0-9]+)-g[0-9a-f]+$ ]]; then
		base=${BASH_REMATCH[1]}
		pre=${BASH_REMATCH[3]}
		n=${BASH_REMATCH[4]}
		version=$base${pre:+~$pre}
		if [ "$n" != 0 ] || [ -n "$dirty" ]; then
			version=$version+$n.g$sha$dirty
		fi
	else
		version=0.0.$(git rev-list --count HEAD)+g$sha$dirty
	fi
fi

[[ $version =~ ^([0-9]+)\.([0-9]+)\.([0-9]+)([~+][0-9A-Za-z.~+]*)?$ ]] ||
	die "\"$version\" is not X.Y.Z[~pre][+build] (letters, digits and dots after ~ or +)"
major=$((10#${BASH_REMATCH[1]}))
minor=$((10#${BASH_REMATCH[2]}))
patch=$((10#${BASH_REMATCH[3]}))
if ((major > 255 || minor > 255 || patch > 65535)); then
	die "$major.$minor.$patch does not fit a Windows Installer version (at most 255.255.65535)"
fi
echo "$version $major.$minor.$patch"
