// Package packaging holds the tests of the wbagent packages: they run
// installer/package.sh (the script behind `make package`) once, then inspect
// the .deb, .rpm and .msi with the tools an administrator or a distribution
// would use (lintian, dpkg-deb, rpm, msiinfo, systemd-analyze), and install
// the .deb and the .rpm into a throwaway Debian root to check the installed
// layout, `wbagent check --offline` as the service account, and removal.
//
// The tests need root (chroot, file owners) and the tools listed by
// requireTools; a missing tool fails the test with the package to install,
// except systemd-analyze, which is checked where available. `go test -short`
// skips everything that builds packages. The Debian root comes from
// debootstrap (network access to a Debian mirror, about 40 s) and is cached
// for the day under the user's cache folder (see debianBase).
package packaging
