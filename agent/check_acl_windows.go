//go:build windows

package main

// readDACL reads a folder's DACL as SDDL (scm_windows.go).
var readDACL = readDACLWindows
