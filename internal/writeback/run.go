package writeback

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"wbagent/internal/audit"
	"wbagent/internal/ledger"
	"wbagent/internal/logging"
	"wbagent/internal/protocol"
	"wbagent/internal/wire"
)

// Audit details that say more than the code about an outcome.
const (
	// AuditDetailRecovered: an `ok` decided from pwdLastSet; an earlier
	// delivery's write took effect, but its result was never recorded
	// (protocol v1 §7).
	AuditDetailRecovered = "recovered"
	// AuditDetailInterrupted: abandoned because handling was cut short
	// (the agent stopping, the message lock lost).
	AuditDetailInterrupted = "interrupted"
	// AuditDetailInFlight: abandoned because another delivery of the same
	// request was still being handled by this agent.
	AuditDetailInFlight = "in_flight"
)

// run carries an authenticated request through the exactly-one-effect
// checks of §7 and, when mayApply, the directory write. An expired request
// runs with mayApply false: it is answered with the result of an earlier
// delivery's write if one took effect, else `expired`.
func (t *task) run(ctx context.Context, mayApply bool) Outcome {
	id := t.req.ID
	l := t.h.o.Ledger
	var prev ledger.Record
	var claimedAt time.Time
	err := t.retry(ctx, "claiming the request in the ledger", func() error {
		var err error
		claimedAt = t.now()
		prev, err = l.MarkApplying(id, claimedAt)
		if err != nil || prev.State != ledger.Done { // a done record is only read
			t.h.setStateErr(err)
		}
		return err
	})
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return t.interrupted(ctx, err)
	case errors.Is(err, ledger.ErrInFlight):
		// Another delivery of this id is still being handled here; this
		// one finds its result when it comes back.
		t.auditDetail = AuditDetailInFlight
		return t.abandon("", err)
	default:
		return t.abandon(wire.CodeInternalError, err)
	}
	if prev.State == ledger.Done {
		if prev.Audited {
			return t.replay(prev.Result)
		}
		// The result is recorded but its audit line is not (yet). If
		// another delivery here is writing that line right now, wait for
		// it and replay; else this agent crashed (or its audit disk was
		// full) before the line was written, and this delivery writes it.
		for {
			wait, mine := t.h.beginAuditing(id)
			if mine {
				break
			}
			select {
			case <-wait:
			case <-ctx.Done():
				return t.interrupted(ctx, ctx.Err())
			}
			if rec, err := l.Get(id); err == nil && rec.Audited {
				return t.replay(prev.Result)
			}
		}
		t.auditing = true
		if found, err := t.h.o.Audit.Contains(id, audit.EventResult, prev.At.Add(-time.Second)); err != nil || found {
			// The line was written and the agent stopped before the ledger
			// heard of it (or the trail cannot be read: better a missing
			// recovered line than a second result line).
			if err != nil {
				t.log.Warn("reading the audit trail for an earlier result line failed", zap.Error(err))
			}
			return t.replay(prev.Result)
		}
		out := t.replay(prev.Result)
		if out.Event == audit.EventReplayed {
			out.Event, t.auditDetail = audit.EventResult, AuditDetailRecovered
		}
		return out
	}
	// The claim is held from here: every path ends in MarkDone or Release.
	applyingAt, recovering := claimedAt, false
	if prev.State == ledger.Applying {
		applyingAt, recovering = prev.At, true
	}
	var ss *ledger.SessionState
	if t.d.Session != nil {
		if ss, err = t.loadSession(ctx); err != nil {
			l.Release(id)
			return t.failed(ctx, err)
		}
		if rec, ok := ss.Find(id); ok {
			switch rec.State {
			case ledger.Done:
				// Another agent answered it: keep its result and resend it.
				_, t.auditing = t.h.beginAuditing(id)
				if err := l.MarkDone(id, rec.Result, t.now()); err != nil {
					l.Release(id)
					t.log.Warn("recording a replayed result in the ledger failed", zap.Error(err))
				}
				return t.replay(rec.Result)
			case ledger.Applying:
				recovering = true
				if rec.At.Before(applyingAt) {
					applyingAt = rec.At
				}
			}
		}
		if mayApply {
			// Written before the directory write, so that an agent that
			// gets this session after a crash knows a write may have
			// happened.
			ss.Put(ledger.Record{ID: id, State: ledger.Applying, At: applyingAt})
			if err := t.saveSession(ctx, ss); err != nil {
				l.Release(id)
				return t.failed(ctx, fmt.Errorf("write session state: %w", err))
			}
		}
	}
	code, detail, mayHaveWritten, stop := t.decide(ctx, applyingAt, recovering, mayApply)
	if stop != nil {
		if mayHaveWritten {
			l.Release(id) // the applying record stays for the redelivery to decide
		} else {
			t.forget(ctx, ss)
		}
		return *stop
	}
	return t.answer(ctx, code, detail, ss)
}

// forget drops the applying records of a delivery that wrote nothing: every
// directory attempt failed before a write could reach the DC. Otherwise
// each redelivery would have to prove from pwdLastSet that nothing
// happened, which it cannot while the directory is down, and the request
// could never be answered `expired`. A record that cannot be dropped only
// costs that proof later, so failures are logged, not returned.
func (t *task) forget(ctx context.Context, ss *ledger.SessionState) {
	id := t.req.ID
	if err := t.h.o.Ledger.Forget(id); err != nil {
		t.log.Warn("dropping the applying record failed; a redelivery will check pwdLastSet first",
			zap.String(logging.FieldRequestID, id), zap.Error(err))
	}
	if ss == nil {
		return
	}
	if _, ok := ss.Find(id); !ok {
		return
	}
	ss.Remove(id)
	pctx, cancel := t.postWriteContext(ctx)
	defer cancel()
	if err := t.saveSession(pctx, ss); err != nil {
		t.log.Warn("dropping the applying record from the session state failed; a redelivery will check pwdLastSet first",
			zap.String(logging.FieldRequestID, id), zap.Error(err))
	}
}

// failed is the abandon for a failure of the agent's own machinery.
func (t *task) failed(ctx context.Context, err error) Outcome {
	if ctx.Err() != nil {
		return t.interrupted(ctx, err)
	}
	return t.abandon(wire.CodeInternalError, err)
}

// decide finds the request's result: from pwdLastSet when an earlier write
// may have happened, else by writing (when mayApply). Transient failures
// are retried with backoff within the delivery's retry budget; when it is
// spent, decide returns an abandon outcome. mayHaveWritten reports whether
// a write of this request may have reached the directory (an earlier
// delivery's, or an attempt whose answer was lost).
//
// Which writes may be repeated when an earlier one may have happened:
//   - unlock: always; clearing a lockout twice is the same as once.
//   - change: only when pwdLastSet (from the PDC emulator) is not after the
//     time the first attempt began. If it is, the change took effect and
//     the answer is ok; repeating it would fail with wrong_old_password.
//   - reset: the same rule. A repeated reset with the same password is
//     harmless in itself, but where the DC applies the history rule to
//     resets (historyOnReset) it would fail with password_policy/history,
//     so an effect pwdLastSet proves is answered ok instead. A reset with
//     mustChange leaves pwdLastSet at 0, proving nothing: it is repeated,
//     which is what an administrator would do.
//
// pwdLastSet is stamped by the DC's clock and the applying time by the
// agent's: the rule assumes they agree to within the time between the
// applying record and the write (a few milliseconds). Domain members keep
// time with their DCs (Kerberos refuses skews over five minutes, but the
// rule needs better: keep the agent's host on the domain's time service).
func (t *task) decide(ctx context.Context, applyingAt time.Time, recovering, mayApply bool) (code, detail string, mayHaveWritten bool, stop *Outcome) {
	req := t.req
	for n := 1; ; n++ {
		var failure error
		if recovering && req.Op != wire.OpUnlock {
			landed, err := t.landed(ctx, applyingAt)
			switch {
			case err != nil:
				failure = fmt.Errorf("read pwdLastSet to learn whether an earlier attempt took effect: %w", err)
			case landed:
				t.auditDetail = AuditDetailRecovered
				t.log.Info("an earlier attempt took effect (pwdLastSet is after it began); answering ok",
					zap.String(logging.FieldRequestID, req.ID))
				return wire.CodeOK, "", true, nil
			}
		}
		if failure == nil {
			if !mayApply || !t.now().Before(req.ExpiresAt) {
				return wire.CodeExpired, "", recovering, nil
			}
			if err := ctx.Err(); err != nil {
				out := t.interrupted(ctx, err)
				return "", "", recovering, &out
			}
			a := t.apply(ctx)
			if !isTransient(a) {
				if completes(a.Code) {
					return a.Code, a.Detail, true, nil
				}
				out := t.abandon(wire.CodeInternalError, fmt.Errorf("directory answered %q: %w", a.Code, errOrCode(a)))
				return "", "", recovering, &out
			}
			if a.Indeterminate {
				recovering = true // the write may have happened before the failure
			}
			failure = errOrCode(a)
		}
		if ctx.Err() != nil {
			out := t.interrupted(ctx, failure)
			return "", "", recovering, &out
		}
		remaining := t.deadline.Sub(t.now())
		if remaining <= 0 {
			out := t.abandon(wire.CodeDirectoryUnavailable, fmt.Errorf("retry budget of %s spent: %w", t.h.o.RetryBudget, failure))
			return "", "", recovering, &out
		}
		wait := min(t.h.backoff(n), remaining)
		t.log.Warn("directory failed; retrying", zap.String(logging.FieldRequestID, req.ID),
			zap.Int(logging.FieldAttempt, n), zap.Duration("after", wait), zap.String(logging.FieldADCode, t.applied.ADCode), zap.Error(failure))
		if err := t.h.o.Clock.Sleep(ctx, wait); err != nil {
			out := t.interrupted(ctx, failure)
			return "", "", recovering, &out
		}
		t.dirTime += wait
	}
}

// apply makes one directory write attempt.
func (t *task) apply(ctx context.Context) Applied {
	req := t.req
	start := t.now()
	t.attempts++
	a := t.h.o.Directory.Apply(ctx, Change{
		Op: req.Op, Target: req.Target, Unlock: req.Unlock, MustChange: req.MustChange,
		New: req.New, Old: req.Old,
	})
	t.dirTime += t.now().Sub(start)
	prev := t.applied
	t.applied = a
	if a.DN == "" { // keep what an earlier attempt resolved
		t.applied.DN, t.applied.ObjectGUID = prev.DN, prev.ObjectGUID
	}
	if a.DC == "" {
		t.applied.DC = prev.DC
	}
	return a
}

// landed reports whether the account's password was set after at, i.e.
// whether a write begun at at took effect.
func (t *task) landed(ctx context.Context, at time.Time) (bool, error) {
	start := t.now()
	set, err := t.h.o.Directory.PwdLastSet(ctx, t.req.Target)
	t.dirTime += t.now().Sub(start)
	if err != nil {
		return false, err
	}
	return set.After(at), nil
}

// answer records the result (ledger, then session state) and builds the
// outcome that sends it and completes the message.
func (t *task) answer(ctx context.Context, code, detail string, ss *ledger.SessionState) Outcome {
	id := t.req.ID
	res := protocol.NewResult(id, t.req.Op, code, detail, t.h.o.Agent, t.now())
	body, err := res.MarshalJSON()
	if err != nil {
		t.h.o.Ledger.Release(id)
		return t.abandon(wire.CodeInternalError, fmt.Errorf("encode result: %w", err))
	}
	// The result is decided (and maybe written): record it even if the
	// delivery's context has ended.
	pctx, cancel := t.postWriteContext(ctx)
	defer cancel()
	// Until its audit line is written, a duplicate delivery that finds
	// this result must not write the line itself.
	_, t.auditing = t.h.beginAuditing(id)
	err = t.retry(pctx, "recording the result in the ledger", func() error {
		err := t.h.o.Ledger.MarkDone(id, body, t.now())
		t.h.setStateErr(err)
		return err
	})
	if err != nil {
		t.h.o.Ledger.Release(id)
		t.log.Error("recording the result in the ledger failed; a redelivery to this agent will decide again",
			zap.String(logging.FieldRequestID, id), zap.Error(err))
	}
	if ss != nil {
		ss.Put(ledger.Record{ID: id, State: ledger.Done, Result: body})
		if err := t.saveSession(pctx, ss); err != nil {
			t.log.Warn("recording the result in the session state failed; another agent would decide again from pwdLastSet",
				zap.String(logging.FieldRequestID, id), zap.Error(err))
		}
	}
	return t.withReply(Outcome{Settle: Complete, Event: audit.EventResult}, res)
}

// isTransient reports whether a directory answer may change on retry.
func isTransient(a Applied) bool {
	return a.Transient || a.Code == wire.CodeDirectoryUnavailable
}

// completes reports whether code is a final answer from the directory: a
// result of §6 after which the message is completed.
func completes(code string) bool {
	switch code {
	case wire.CodeOK, wire.CodePasswordPolicy, wire.CodeWrongOldPassword,
		wire.CodeAccountLocked, wire.CodeAccountDisabled, wire.CodeUserNotFound,
		wire.CodeUserAmbiguous, wire.CodeProtectedAccount, wire.CodeOutOfScope,
		wire.CodeAccessDenied:
		return true
	}
	return false
}

func errOrCode(a Applied) error {
	if a.Err != nil {
		return a.Err
	}
	return fmt.Errorf("directory answered %s", a.Code)
}
