// Package proxy runs a real HTTP proxy, Debian's tinyproxy, on a loopback
// port for tests of the agent's proxy support: CONNECT tunnels, basic
// authentication, and a proxy that refuses CONNECT to a port.
package proxy
