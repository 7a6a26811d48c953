//go:build windows

package main

import (
	"fmt"
	"time"

	"golang.org/x/sys/windows/svc"
)

// runAsService runs p under the Windows service manager: the entry point of
// `run --service`, and of a plain `run` the manager started (detected).
func runAsService(p *program) error {
	h := &winHandler{p: p}
	serviceRan = true
	if err := svc.Run(serviceName, h); err != nil {
		return fmt.Errorf("run as the Windows service %s: %w (start the service with `net start %s`; in a console use `wbagent run` without --service)", serviceName, err, serviceName)
	}
	return h.err
}

// winHandler answers the service manager for the agent. A fatal error
// stops the service with an error exit code, so the recovery actions
// (restart after 20 s) apply.
type winHandler struct {
	p   *program
	err error
}

// Execute implements svc.Handler.
func (h *winHandler) Execute(_ []string, r <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	changes <- svc.Status{State: svc.StartPending}
	_ = h.p.Start(nil)
	changes <- svc.Status{State: svc.Running, Accepts: svc.AcceptStop | svc.AcceptShutdown}
	stopping := svc.Status{State: svc.StopPending, WaitHint: uint32((h.p.cfg.Agent.GracePeriod.D() + 10*time.Second) / time.Millisecond)}
	for {
		select {
		case c := <-r:
			switch c.Cmd {
			case svc.Interrogate:
				changes <- c.CurrentStatus
			case svc.Stop, svc.Shutdown:
				changes <- stopping
				_ = h.p.Stop(nil)
				return false, 0
			}
		case err := <-h.p.fatal:
			h.err = err
			changes <- stopping
			_ = h.p.Stop(nil)
			return true, exitError
		}
	}
}

// reportStartFailure answers the service manager when `run --service` fails
// before the agent could run (a config, key or secret problem): the start
// then fails at once with the agent's exit code, instead of the manager
// waiting for its timeout and saying only "the service did not respond"
// (error 1053). The reason is in the log and `wbagent check`.
func reportStartFailure(code int) {
	_ = svc.Run(serviceName, failedStart(code))
}

type failedStart uint32

// Execute implements svc.Handler.
func (f failedStart) Execute(_ []string, _ <-chan svc.ChangeRequest, changes chan<- svc.Status) (bool, uint32) {
	changes <- svc.Status{State: svc.StartPending}
	return true, uint32(f)
}
