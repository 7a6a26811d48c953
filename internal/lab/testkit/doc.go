// Package testkit holds the small helpers that tests across the tree had
// each written for themselves: waiting for a condition, a context bound to
// a test, stopping a child process gently. It imports nothing of wbagent's,
// so any package's tests can use it without an import cycle, and, like
// everything under internal/lab, no production package may import it.
package testkit
