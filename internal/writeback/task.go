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

// Auditor takes audit records; *audit.Writer is the real one. Record must
// return only once the record is durable (fsynced).
type Auditor interface {
	Record(ctx context.Context, r audit.Record) error
	// Contains reports whether the trail holds a line of event for the
	// request written at or after since.
	Contains(requestID, event string, since time.Time) (bool, error)
}

// task is the state of one delivery while Handle works on it.
type task struct {
	h     *Handler
	d     Delivery
	start time.Time
	// deadline ends the retry budget of this delivery.
	deadline time.Time
	log      *zap.Logger

	// req is the authenticated request (with secrets for a fresh request,
	// without for an expired one); nil when the message was not trusted.
	req *protocol.Request
	rej *protocol.Rejection

	attempts int
	dirTime  time.Duration
	// applied is the last directory answer, for DN, objectGUID and DC.
	applied Applied
	// auditDetail overrides the audit record's detail (e.g. "recovered").
	auditDetail string
	// auditing is set while this delivery holds the request in
	// Handler.auditing: from just before its result is recorded in the
	// ledger until its audit line is written (or fails).
	auditing bool
}

func newTask(h *Handler, d Delivery) *task {
	now := h.o.Clock.Now()
	return &task{
		h: h, d: d, start: now, deadline: now.Add(h.o.RetryBudget),
		log: h.log.With(zap.String(logging.FieldMessageID, d.Message.MessageID)),
	}
}

func (t *task) now() time.Time { return t.h.o.Clock.Now() }

// id is the request id: the trusted request's, else the MessageID.
func (t *task) id() string {
	if t.req != nil && t.req.ID != "" {
		return t.req.ID
	}
	return t.d.Message.MessageID
}

func (t *task) op() string {
	if t.req != nil {
		return string(t.req.Op)
	}
	return ""
}

// retry runs f until it succeeds, the delivery's retry budget is spent, or
// ctx ends, waiting with backoff in between. It returns f's last error.
func (t *task) retry(ctx context.Context, what string, f func() error) error {
	for n := 1; ; n++ {
		err := f()
		if err == nil {
			return nil
		}
		remaining := t.deadline.Sub(t.now())
		if ctx.Err() != nil || remaining <= 0 {
			return err
		}
		wait := min(t.h.backoff(n), remaining)
		t.log.Warn(what+" failed; retrying", zap.Int(logging.FieldAttempt, n), zap.Duration("after", wait), zap.Error(err))
		if t.h.o.Clock.Sleep(ctx, wait) != nil {
			return err
		}
	}
}

// abandon leaves the message for redelivery. code is directory_unavailable
// or internal_error, or empty when handling was interrupted (stop, lost
// lock) rather than failed.
func (t *task) abandon(code string, err error) Outcome {
	return Outcome{Settle: Abandon, Code: code, Event: audit.EventAbandoned, Err: err}
}

// interrupted is the abandon for a delivery whose context ended.
func (t *task) interrupted(ctx context.Context, err error) Outcome {
	t.auditDetail = AuditDetailInterrupted
	return t.abandon("", fmt.Errorf("handling interrupted (%v): %w", context.Cause(ctx), err))
}

// rejected turns a Rejection into its outcome (§5, §6, §8).
func (t *task) rejected(ctx context.Context, rej *protocol.Rejection) Outcome {
	t.rej = rej
	t.req = rej.Request
	switch rej.Class {
	case protocol.Expired:
		if rej.Request == nil {
			break
		}
		// An expired request may have been applied by an earlier delivery:
		// run the exactly-one-effect checks, but never write.
		return t.run(ctx, false)
	case protocol.Invalid:
		out := Outcome{Settle: DeadLetter, DeadLetterReason: wire.CodeInvalidRequest,
			DeadLetterDescription: rej.Rule, Code: wire.CodeInvalidRequest, Event: audit.EventDeadLettered}
		if t.id() == "" {
			return out // no id to answer to: the sender cannot match a result
		}
		res := protocol.NewResult(t.id(), wire.Op(t.op()), wire.CodeInvalidRequest, "", t.h.o.Agent, t.now())
		return t.withReply(out, res)
	case protocol.Malformed, protocol.Unauthenticated:
		// No result: an untrusted message's ReplyTo cannot be trusted (§5).
		reason := rej.Class.String()
		return Outcome{Settle: DeadLetter, DeadLetterReason: reason, DeadLetterDescription: rej.Rule,
			Code: reason, Event: audit.EventDeadLettered}
	}
	return t.abandon(wire.CodeInternalError, fmt.Errorf("unexpected rejection: %w", rej))
}

// withReply signs res into out's reply when the request named a ReplyTo.
func (t *task) withReply(out Outcome, res protocol.Result) Outcome {
	out.Code, out.Detail = res.Code, res.Detail
	if t.req == nil || t.req.ReplyTo == "" {
		return out
	}
	m, err := protocol.SignResult(t.h.o.SigningKey, res, t.req.ReplyToSessionID)
	if err != nil {
		return t.abandon(wire.CodeInternalError, fmt.Errorf("sign result: %w", err))
	}
	out.Reply, out.ReplyTo = &m, t.req.ReplyTo
	return out
}

// finish completes out with what was measured, writes the audit record and
// withholds the settlement when the record could not be written: no
// message is completed (or dead-lettered) without its audit line.
func (t *task) finish(ctx context.Context, out Outcome) Outcome {
	if t.auditing {
		defer t.h.endAuditing(t.id())
	}
	end := t.now()
	out.RequestID, out.Op = t.id(), t.op()
	out.Attempts, out.DirectoryTime, out.Duration = t.attempts, t.dirTime, end.Sub(t.start)
	if !t.d.EnqueuedAt.IsZero() && t.start.After(t.d.EnqueuedAt) {
		out.QueueWait = t.start.Sub(t.d.EnqueuedAt)
	}
	rec := t.auditRecord(out, end)
	actx, cancel := t.postWriteContext(ctx)
	defer cancel()
	sink := audit.Recorder(t.h.o.Audit)
	if t.h.o.Rejections != nil && untrusted(out) {
		sink = t.h.o.Rejections
	}
	err := t.retry(actx, "writing the audit record", func() error { return sink.Record(actx, rec) })
	if err != nil {
		t.h.auditWritten(err)
		t.log.Error("audit record not written; leaving the message for redelivery", zap.Error(err))
		out.Settle, out.Reply, out.ReplyTo, out.AuditFailed = Abandon, nil, "", true
		out.Err = errors.Join(out.Err, fmt.Errorf("write audit record: %w", err))
		return out
	}
	t.h.auditWritten(nil)
	if t.req != nil && (out.Event == audit.EventResult || out.Event == audit.EventReplayed) {
		// The result's line is in the trail: a redelivery only replays it.
		if err := t.h.o.Ledger.MarkAudited(out.RequestID); err != nil {
			t.log.Warn("recording that the result is audited failed; a redelivery will write its result line again",
				zap.String(logging.FieldRequestID, out.RequestID), zap.Error(err))
		}
	}
	return out
}

// untrusted reports whether out dead-letters a message nobody trusted:
// malformed, or not signed by a trusted sender. Anyone who can send to the
// queue can make those, as many as they like, so their audit lines are
// aggregated; a trusted sender's messages keep a line each.
func untrusted(out Outcome) bool {
	return out.Event == audit.EventDeadLettered &&
		(out.Code == protocol.Malformed.String() || out.Code == protocol.Unauthenticated.String())
}

// postWriteContext is ctx, or, once ctx has ended, a fresh context bounded
// by PostWriteTimeout: what already happened must still be recorded.
func (t *task) postWriteContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if ctx.Err() == nil {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(context.WithoutCancel(ctx), t.h.o.PostWriteTimeout)
}

// auditRecord describes out for the audit trail.
func (t *task) auditRecord(out Outcome, at time.Time) audit.Record {
	r := audit.Record{
		Time: at, Event: out.Event, RequestID: out.RequestID, Op: out.Op,
		Code: out.Code, Detail: out.Detail, Attempts: t.attempts,
		DurationMs: out.Duration.Milliseconds(), Agent: t.h.o.Agent,
		DN: t.applied.DN, ObjectGUID: t.applied.ObjectGUID, DC: t.applied.DC,
	}
	if t.auditDetail != "" {
		r.Detail = t.auditDetail
	}
	if t.rej != nil {
		r.SenderKID = t.rej.SenderKID
		if out.Settle == DeadLetter && r.Detail == "" {
			r.Detail = out.DeadLetterDescription
		}
	}
	if t.req != nil {
		if t.req.SenderKID != "" {
			r.SenderKID = t.req.SenderKID
		}
		r.Target = targetMap(t.req.Target)
		if t.req.Actor.ID != "" {
			r.Actor = &audit.Actor{ID: t.req.Actor.ID, Kind: t.req.Actor.Kind, IP: t.req.Actor.IP}
		}
	}
	if r.Event == "" {
		r.Event = audit.EventResult
	}
	return r
}

// targetMap returns the target's members as the request gave them.
func targetMap(tg protocol.Target) map[string]string {
	members := tg.Members()
	if len(members) == 0 {
		return nil
	}
	m := make(map[string]string, len(members))
	for _, kv := range members {
		m[kv[0]] = kv[1]
	}
	return m
}

// replay answers with a result recorded earlier (§7), without a directory
// write.
func (t *task) replay(body []byte) Outcome {
	res, err := protocol.ParseResult(body)
	if err != nil {
		return t.abandon(wire.CodeInternalError, fmt.Errorf("the recorded result of request %s cannot be read: %w", t.id(), err))
	}
	if res.ID != t.id() {
		return t.abandon(wire.CodeInternalError, fmt.Errorf("the recorded result for request %s names request %s", t.id(), res.ID))
	}
	out := Outcome{Settle: Complete, Event: audit.EventReplayed}
	return t.withReply(out, *res)
}

// loadSession reads the session state and keeps the records that
// authenticate (see openSession); the rest are treated as absent.
func (t *task) loadSession(ctx context.Context) (*ledger.SessionState, error) {
	var raw []byte
	err := t.retry(ctx, "reading the session state", func() error {
		var err error
		raw, err = t.d.Session.Get(ctx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read session state: %w", err)
	}
	return t.openSession(ctx, raw)
}

// saveSession writes the session state, sealed.
func (t *task) saveSession(ctx context.Context, ss *ledger.SessionState) error {
	b, err := t.h.o.Seal.Encode(ss, t.binding())
	if err != nil {
		return err
	}
	return t.retry(ctx, "writing the session state", func() error { return t.d.Session.Set(ctx, b) })
}
