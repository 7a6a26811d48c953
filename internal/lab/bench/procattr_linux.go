package bench

import "syscall"

// childProcAttr ties a child agent to this process: if the benchmark dies,
// the kernel kills the agent too, so no run leaves one behind.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
