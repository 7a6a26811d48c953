//go:build !windows

package main

// readDACL is nil: Windows ACLs exist only on Windows.
var readDACL func(string) (string, error)
