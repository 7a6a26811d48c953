package testkit

import (
	"os"
	"os/exec"
	"time"
)

// Stop asks a child process to end with sig and waits for exited to be
// closed (by whoever called cmd.Wait); if it has not ended within grace it
// is killed, and Stop waits for that too. It reports whether the process
// ended on the signal: a harness that outlives its grace is worth saying.
func Stop(cmd *exec.Cmd, exited <-chan struct{}, sig os.Signal, grace time.Duration) bool {
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-exited
		return false
	}
}
