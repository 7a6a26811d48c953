// Package lab holds the project's test laboratory, kept apart from the
// product so that a reader can tell one from the other by the tree: the
// Samba AD DC harness (sambadc), the agent and devbus process harness
// (testbed), a real HTTP proxy for the proxy tests (proxy), the end-to-end,
// chaos and packaging suites, the Windows lane under Wine (wine), the
// protocol vectors reader (vectors), the benchmark and the demo. Nothing
// the agent ships imports any of it; layout_test.go enforces that.
package lab
