package writeback

import (
	"context"
	"errors"
	"fmt"

	"wbagent/internal/ledger"
)

// readyProber is an Auditor that can tell whether its disk takes writes
// again after a failure (*audit.Writer).
type readyProber interface {
	Ready(ctx context.Context) error
}

// stateProber is a Ledger that can tell whether its disk takes writes
// again after a failure (*ledger.Store).
type stateProber interface {
	Probe() error
}

// Intake reports whether the agent may take messages: nil unless the last
// audit write or the last ledger write failed (a full or failing disk).
// While one did, every message taken would only be abandoned again, each
// delivery counting towards the broker's maximum until it is dead-lettered
// for a fault of the agent's; so the transport takes none, and the
// messages wait on the queue. Each call while failing tries a probe write
// on the failing disk, and once it succeeds the failure is cleared: intake
// resumes by itself when space returns.
func (h *Handler) Intake(ctx context.Context) error {
	h.mu.Lock()
	auditErr, stateErr := h.auditErr, h.stateErr
	h.mu.Unlock()
	// Without a probe nothing could tell when to resume: such a store
	// (a test double) never pauses intake.
	var errs []error
	if p, ok := h.o.Audit.(readyProber); ok && auditErr != nil {
		if err := p.Ready(ctx); err != nil {
			errs = append(errs, fmt.Errorf("the audit trail cannot be written: %w", err))
		} else {
			h.clearAuditErr(auditErr)
		}
	}
	if p, ok := h.o.Ledger.(stateProber); ok && stateErr != nil {
		if err := p.Probe(); err != nil {
			errs = append(errs, fmt.Errorf("the ledger (agent.stateDir) cannot be written: %w", err))
		} else {
			h.clearStateErr(stateErr)
		}
	}
	return errors.Join(errs...)
}

// StateReady reports, for /readyz, whether the ledger takes writes: nil
// unless the last ledger write failed and a probe write fails too.
func (h *Handler) StateReady(context.Context) error {
	h.mu.Lock()
	stateErr := h.stateErr
	h.mu.Unlock()
	if stateErr == nil {
		return nil
	}
	if p, ok := h.o.Ledger.(stateProber); ok {
		perr := p.Probe()
		if perr == nil {
			h.clearStateErr(stateErr)
			return nil
		}
		return fmt.Errorf("ledger (agent.stateDir) cannot be written, messages are left on the queue: %w", perr)
	}
	return fmt.Errorf("ledger (agent.stateDir) failing, messages are left for redelivery: %w", stateErr)
}

// clearAuditErr forgets err, unless a newer failure replaced it.
func (h *Handler) clearAuditErr(err error) {
	h.mu.Lock()
	if h.auditErr == err {
		h.auditErr = nil
	}
	h.mu.Unlock()
}

func (h *Handler) clearStateErr(err error) {
	h.mu.Lock()
	if h.stateErr == err {
		h.stateErr = nil
	}
	h.mu.Unlock()
}

// setStateErr records the outcome of a ledger write. ErrInFlight is not a
// write failure, and ErrClosed only means the agent is stopping. A success
// clears a failure only for a ledger without a probe: with one, only a
// probe does (Intake), so that a nearly full disk, on which one small
// write fits and the next does not, does not switch intake on and off.
func (h *Handler) setStateErr(err error) {
	if errors.Is(err, ledger.ErrInFlight) || errors.Is(err, ledger.ErrClosed) {
		return
	}
	if _, probed := h.o.Ledger.(stateProber); probed && err == nil {
		return
	}
	h.mu.Lock()
	h.stateErr = err
	h.mu.Unlock()
}

// auditWritten records the outcome of an audit write, like setStateErr.
func (h *Handler) auditWritten(err error) {
	if _, probed := h.o.Audit.(readyProber); probed && err == nil {
		return
	}
	h.setAuditErr(err)
}
