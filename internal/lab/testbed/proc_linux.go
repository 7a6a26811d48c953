package testbed

import "syscall"

// childAttr makes a child process die with the test binary, whatever kills
// the binary: an agent or broker left running would hold ports and files.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
