// Package wine is the Windows lane of the test laboratory: it runs the
// Windows build of the agent under Wine, installed by the MSI that `make
// package` builds, as a service of Wine's service control manager, against
// a Samba AD DC and devbus running on this (Linux) machine over loopback.
//
// `make test-windows` runs it (WBAGENT_WINE=1); plain `go test ./...` skips
// it. What Wine proves and what only a real Windows Server can is listed in
// the README's Windows section.
//
// testdata/processprng.c is the source of a bcryptprimitives.dll for Wine
// 8.0, which lacks one: the Go runtime takes its random bytes from
// ProcessPrng and does not start without it. It lives here, with the test
// that builds it (mingw-w64) into the test's private Wine prefix, and not
// under installer/, because it is a test shim: real Windows ships the DLL,
// and nothing under installer/ may carry it into the MSI.
package wine
