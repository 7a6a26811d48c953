package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"

	"wbagent/internal/logging"
	"wbagent/internal/wire"
)

// validateChange checks what the protocol layer should already have checked, so
// bad input becomes an internal_error instead of a crash or a wrong write.
func validateChange(c Change) error {
	switch c.Op {
	case wire.OpReset:
		if c.New.IsEmpty() {
			return errors.New("reset without a new password")
		}
	case wire.OpChange:
		if c.New.IsEmpty() || c.Old.IsEmpty() {
			return errors.New("change needs the old and the new password")
		}
	case wire.OpUnlock:
	default:
		return fmt.Errorf("unknown op %q", c.Op)
	}
	_, err := targetFilters(c.Target)
	return err
}

// Apply resolves the target, checks it against the scope and protection
// rules, and writes the change with one modify. It never panics on bad
// input and never retries a write whose answer was lost (see
// Outcome.Indeterminate); lookups are retried on another connection or
// server within Options.Timeout.
func (d *Directory) Apply(ctx context.Context, ch Change) Outcome {
	start := d.opts.Now()
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	out := d.apply(ctx, ch)
	fields := []zap.Field{
		zap.String(logging.FieldOp, string(ch.Op)), zap.String(logging.FieldTarget, ch.Target.String()),
		zap.String(logging.FieldCode, out.Code), zap.String(logging.FieldDN, out.DN),
		zap.String(logging.FieldObjectGUID, out.ObjectGUID), zap.String(logging.FieldDC, out.DC),
		zap.Duration(logging.FieldDuration, d.opts.Now().Sub(start)),
	}
	if out.Detail != "" {
		fields = append(fields, zap.String(logging.FieldDetail, out.Detail))
	}
	if out.ADCode != "" {
		fields = append(fields, zap.String(logging.FieldADCode, out.ADCode))
	}
	if out.Err != nil {
		fields = append(fields, zap.Error(out.Err))
	}
	switch {
	case out.Code == wire.CodeOK:
		d.log.Debug("writeback applied", fields...)
	case out.Transient || out.Code == wire.CodeInternalError:
		d.log.Warn("writeback failed", fields...)
	default:
		d.log.Info("writeback refused", fields...)
	}
	return out
}

func (d *Directory) apply(ctx context.Context, ch Change) Outcome {
	if err := validateChange(ch); err != nil {
		return Outcome{Code: wire.CodeInternalError, Err: fmt.Errorf("invalid change: %w", err)}
	}
	ds, guid, err := d.locate(ctx, ch.Target)
	if err != nil {
		return outcomeOf(err)
	}
	out := Outcome{Domain: ds.cfg.Name}
	err = d.withConn(ctx, ds.pool, func(pc *pconn) (bool, error) {
		out = Outcome{Domain: ds.cfg.Name, DC: pc.srv.url}
		var a *account
		var err error
		if guid != nil {
			a, err = readByGUID(pc, guid)
		} else {
			a, err = findIn(pc, ds, ch.Target)
		}
		if err != nil {
			return false, err
		}
		out.DN, out.ObjectGUID = a.dn, GUIDString(a.guid)
		ref, err := d.guard(ctx, pc, ds, a)
		if err != nil {
			return false, err
		}
		if ref != nil {
			out.Code, out.Err = ref.code, errors.New(ref.why)
			return false, nil
		}
		req, ref, err := d.modifyFor(pc, a.dn, ch)
		if err != nil {
			return false, err
		}
		if ref != nil {
			out.Code, out.Detail, out.Err = ref.code, wire.DetailPolicy, errors.New(ref.why)
			return false, nil
		}
		err = pc.conn.Modify(req)
		if err != nil {
			return true, err
		}
		out.Code = wire.CodeOK
		return true, nil
	})
	if err != nil {
		o := outcomeOf(err)
		o.Domain, o.DN, o.ObjectGUID = out.Domain, out.DN, out.ObjectGUID
		if o.DC == "" {
			o.DC = out.DC
		}
		return o
	}
	return out
}

// modifyFor builds the one modify of a change: reset replaces unicodePwd
// (with lockoutTime=0 and pwdLastSet=0 as asked), change deletes the old
// and adds the new value (with lockoutTime=0 as asked), unlock writes
// lockoutTime=0. A reset carries the
// policy hints control as historyOnReset and the server decide.
func (d *Directory) modifyFor(pc *pconn, dn string, ch Change) (*ldap.ModifyRequest, *refusal, error) {
	var controls []ldap.Control
	req := ldap.NewModifyRequest(dn, nil)
	switch ch.Op {
	case wire.OpReset:
		switch oid := pc.root.policyHintsOID(); {
		case d.opts.HistoryOnReset == HistoryOff:
		case oid != "":
			controls = append(controls, policyHints{oid: oid})
		case d.opts.HistoryOnReset == HistoryRequire:
			return nil, &refusal{wire.CodePasswordPolicy, fmt.Sprintf("historyOnReset is require and %s does not advertise the policy hints control", pc.srv.url)}, nil
		}
		pw, err := encodePassword(ch.New)
		if err != nil {
			return nil, nil, &resolveError{code: wire.CodeInternalError, err: fmt.Errorf("new password: %w", err)}
		}
		req.Replace("unicodePwd", []string{string(pw)})
		clear(pw)
		if ch.Unlock {
			req.Replace("lockoutTime", []string{"0"})
		}
		if ch.MustChange {
			req.Replace("pwdLastSet", []string{"0"})
		}
	case wire.OpChange:
		oldPw, err := encodePassword(ch.Old)
		if err != nil {
			return nil, nil, &resolveError{code: wire.CodeInternalError, err: fmt.Errorf("old password: %w", err)}
		}
		newPw, err := encodePassword(ch.New)
		if err != nil {
			clear(oldPw)
			return nil, nil, &resolveError{code: wire.CodeInternalError, err: fmt.Errorf("new password: %w", err)}
		}
		req.Delete("unicodePwd", []string{string(oldPw)})
		req.Add("unicodePwd", []string{string(newPw)})
		clear(oldPw)
		clear(newPw)
		// In the same modify the DC clears the lockout before it checks
		// the change (alone, a locked account answers 775). mustChange
		// has no meaning for a change the user makes.
		if ch.Unlock {
			req.Replace("lockoutTime", []string{"0"})
		}
	case wire.OpUnlock:
		req.Replace("lockoutTime", []string{"0"})
	}
	req.Controls = controls
	return req, nil, nil
}

// outcomeOf turns an error from locate or a connection step into an
// outcome.
func outcomeOf(err error) Outcome {
	var re *resolveError
	if errors.As(err, &re) {
		return Outcome{Code: re.code, Err: re.err}
	}
	o := Classify(err)
	var se *sentError
	if errors.As(err, &se) {
		o.DC = se.dc
		if se.sent && !answered(err) {
			o.Indeterminate = true
			o.Code, o.Transient = wire.CodeDirectoryUnavailable, true
		}
	}
	return o
}

// answered reports whether err is the server's own result (busy,
// unavailable: nothing was done) rather than a lost connection or a
// client-side timeout (the write may have been done).
func answered(err error) bool {
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode > 0 && le.ResultCode < ldap.LDAPResultServerDown
}

// PwdLastSet reads the target's pwdLastSet on its domain's PDC emulator
// (which sees every password write first), to tell whether a change left
// half-done was applied. The zero time means "must change at next logon"
// (pwdLastSet 0).
func (d *Directory) PwdLastSet(ctx context.Context, t Target) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.Timeout)
	defer cancel()
	if _, err := targetFilters(t); err != nil {
		return time.Time{}, fmt.Errorf("read pwdLastSet: %w", err)
	}
	ds, guid, err := d.locate(ctx, t)
	if err != nil {
		return time.Time{}, fmt.Errorf("read pwdLastSet of %s: %w", t, err)
	}
	var at time.Time
	var pdc string
	read := false
	err = d.withConn(ctx, ds.pool, func(pc *pconn) (bool, error) {
		if guid == nil {
			a, err := findIn(pc, ds, t)
			if err != nil {
				return false, err
			}
			guid = a.guid
		}
		var err error
		pdc, err = d.pdcOf(pc, ds)
		if err != nil {
			return false, err
		}
		if !sameHost(pdc, pc.root.dnsHostName) {
			return false, nil
		}
		at, err = readPwdLastSet(pc.conn, guid)
		read = err == nil
		return false, err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("read pwdLastSet of %s: %w", t, err)
	}
	if !read {
		at, err = d.pwdLastSetOn(ctx, ds, pdc, guid)
		if err != nil {
			return time.Time{}, fmt.Errorf("read pwdLastSet of %s on the PDC emulator %s: %w", t, pdc, err)
		}
	}
	return at, nil
}
