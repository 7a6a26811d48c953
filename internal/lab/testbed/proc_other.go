//go:build !linux

package testbed

import "syscall"

// childAttr has no way to tie a child to its parent here; Stop and Kill
// end it.
func childAttr() *syscall.SysProcAttr { return nil }
