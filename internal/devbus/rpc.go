package devbus

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	goamqp "github.com/Azure/go-amqp"
	"go.uber.org/zap"

	"wbagent/internal/devbus/amqp"
)

// Response status codes of $cbs and $management, as Service Bus uses them.
const (
	statusOK           int32 = 200
	statusAccepted     int32 = 202
	statusNoContent    int32 = 204
	statusBadRequest   int32 = 400
	statusUnauthorized int32 = 401
	statusNotFound     int32 = 404
	statusGone         int32 = 410 // lock lost (message or session)
)

// sasTokenType is the CBS token type of shared access signatures.
const sasTokenType = "servicebus.windows.net:sastoken"

// handleRequest answers a $cbs or $management request.
func (c *conn) handleRequest(l *link, p *partialDelivery) {
	srv := c.srv
	if !p.settled {
		srv.confirm(l.s, &amqp.Disposition{Role: amqp.RoleReceiver, First: p.id, Settled: true, State: &amqp.Accepted{}})
	}
	req, err := parseMessage(p.payload)
	if err != nil || req.Properties == nil || req.Properties.ReplyTo == nil {
		srv.log.Warn("dropping a request without a readable reply-to", zap.String("address", l.addr), zap.Error(err))
		return
	}
	op, _ := req.ApplicationProperties["operation"].(string)
	var r response
	if l.kind == kindCBS {
		r = c.putToken(req)
	} else if desc, ok := c.manageAllowed(l); !ok {
		r = fail(statusUnauthorized, "%s", desc)
	} else {
		r = c.manage(l.q, op, req)
	}
	if r.status >= 300 {
		srv.log.Debug("request failed", zap.String("address", l.addr), zap.String("operation", op),
			zap.Int32("status", r.status), zap.String("description", r.desc))
	}
	c.respond(l, req, r)
}

type response struct {
	status int32
	desc   string
	body   any
}

func fail(status int32, format string, args ...any) response {
	return response{status: status, desc: fmt.Sprintf(format, args...)}
}

// respond sends the response to the link whose target is the request's
// reply-to, now or after the injected response delay.
func (c *conn) respond(reqLink *link, req *goamqp.Message, r response) {
	desc := r.desc
	if desc == "" {
		desc = "OK"
	}
	m := &goamqp.Message{
		Properties: &goamqp.MessageProperties{CorrelationID: req.Properties.MessageID},
		ApplicationProperties: map[string]any{
			"status-code":        r.status, // int32: the SDK rejects any other type
			"status-description": desc,
		},
		Value: r.body,
	}
	replyTo := *req.Properties.ReplyTo
	send := func() {
		if rl := c.replyLink(reqLink, replyTo); rl != nil {
			rl.sendRPC(m)
		} else {
			c.srv.log.Warn("no link attached for reply-to; dropping the response", zap.String("replyTo", replyTo))
		}
	}
	c.srv.afterResponseDelay(func() bool { return !c.gone && !c.closing }, send)
}

// replyLink finds the link a response goes to: a receiving link on the
// same node whose target address (the Go SDK) or name (the JavaScript
// SDK's $cbs link) is the reply-to, preferring the request's own session.
func (c *conn) replyLink(reqLink *link, replyTo string) *link {
	match := func(l *link) bool {
		return l.role == amqp.RoleSender && l.kind == reqLink.kind && (l.replyTo == replyTo || l.name == replyTo) &&
			!l.detaching && !l.cleaned
	}
	for _, l := range reqLink.s.links {
		if match(l) {
			return l
		}
	}
	for _, s := range c.sessions {
		for _, l := range s.links {
			if match(l) {
				return l
			}
		}
	}
	return nil
}

// putToken validates a CBS put-token request and records the claim.
func (c *conn) putToken(req *goamqp.Message) response {
	srv := c.srv
	op, _ := req.ApplicationProperties["operation"].(string)
	if op != "put-token" {
		return fail(statusBadRequest, "$cbs supports only put-token, not %q", op)
	}
	if f := &srv.faults; f.cbsFailures > 0 {
		f.cbsFailures--
		return fail(f.cbsStatus, "put-token failed: fault injected by devbus")
	}
	typ, _ := req.ApplicationProperties["type"].(string)
	name, _ := req.ApplicationProperties["name"].(string)
	token, _ := req.Value.(string)
	now := srv.clock.Now()
	var path string
	var expires time.Time
	var err error
	granted := rightsAll
	switch {
	case typ == sasTokenType:
		path, expires, err = srv.validateSAS(token, name, now)
	case typ == jwtTokenType && srv.entra != nil:
		path, expires, granted, err = srv.entra.validateJWT(token, name, now)
	case typ == jwtTokenType:
		err = errors.New("token type jwt is not accepted: this devbus has no Entra ID tenant (start it with an Entra tenant to use Entra ID credentials)")
	default:
		err = fmt.Errorf("token type %q is not accepted: use %s or %s", typ, sasTokenType, jwtTokenType)
	}
	if err != nil {
		srv.log.Info("put-token refused", zap.String("audience", name), zap.String("type", typ), zap.Error(err))
		return fail(statusUnauthorized, "%s", err)
	}
	c.addClaim(claim{path: path, expires: expires, rights: granted}, now)
	return response{status: statusAccepted, desc: "Accepted"}
}

// manage answers a $management operation on q.
func (c *conn) manage(q *queue, op string, req *goamqp.Message) response {
	body, _ := req.Value.(map[string]any)
	if body == nil {
		body = map[string]any{}
	}
	assoc, _ := req.ApplicationProperties["associated-link-name"].(string)
	now := c.srv.clock.Now()
	switch op {
	case "com.microsoft:renew-lock":
		tokens := uuids(body["lock-tokens"])
		if len(tokens) == 0 {
			return fail(statusBadRequest, "renew-lock needs lock-tokens")
		}
		exp := make([]time.Time, 0, len(tokens))
		for _, t := range tokens {
			until, err := q.renewLock(amqp.UUID(t), now)
			if errors.Is(err, errLockLost) {
				return fail(statusGone, "the lock on message %s is lost: it expired or the message was settled", amqp.UUID(t))
			} else if err != nil {
				return fail(statusBadRequest, "%s", err)
			}
			exp = append(exp, until.UTC())
		}
		return response{status: statusOK, body: map[string]any{"expirations": exp}}
	case "com.microsoft:update-disposition":
		return c.updateDisposition(q, body, now)
	case "com.microsoft:peek-message":
		// A session receiver peeks its own session (the SDK does not say
		// which; the associated link does).
		if _, ok := body["session-id"]; !ok {
			if l := c.linkByName(assoc); l != nil && l.group != nil {
				body["session-id"] = l.group.id
			}
		}
		return c.peek(q, body)
	case "com.microsoft:receive-by-sequence-number":
		return c.receiveDeferred(q, body, assoc, now)
	case "com.microsoft:renew-session-lock", "com.microsoft:get-session-state", "com.microsoft:set-session-state":
		id, _ := body["session-id"].(string)
		g, r := c.heldSession(q, id, assoc, now)
		if g == nil {
			return r
		}
		switch op {
		case "com.microsoft:renew-session-lock":
			return response{status: statusOK, body: map[string]any{"expiration": q.renewSession(g, now).UTC()}}
		case "com.microsoft:get-session-state":
			var st any
			if g.state != nil {
				st = append([]byte(nil), g.state...)
			}
			return response{status: statusOK, body: map[string]any{"session-state": st}}
		default:
			st, _ := body["session-state"].([]byte)
			if len(st) == 0 {
				g.state = nil
			} else {
				g.state = append([]byte(nil), st...)
			}
			g.stateUpdated = now
			return response{status: statusOK, body: map[string]any{}}
		}
	case "com.microsoft:get-message-sessions":
		return c.listSessions(q, body)
	}
	return fail(statusBadRequest, "operation %q is not supported by devbus", op)
}

func (c *conn) updateDisposition(q *queue, body map[string]any, now time.Time) response {
	tokens := uuids(body["lock-tokens"])
	status, _ := body["disposition-status"].(string)
	var op settleOp
	switch status {
	case "completed":
		op = opComplete
	case "abandoned":
		op = opAbandon
	case "suspended":
		op = opDeadLetter
	case "defered", "deferred":
		op = opDefer
	default:
		return fail(statusBadRequest, "unknown disposition-status %q", status)
	}
	if len(tokens) == 0 {
		return fail(statusBadRequest, "update-disposition needs lock-tokens")
	}
	reason, _ := body["deadletter-reason"].(string)
	desc, _ := body["deadletter-description"].(string)
	props, _ := body["properties-to-modify"].(map[string]any)
	for _, t := range tokens {
		if err := q.settle(amqp.UUID(t), op, reason, desc, props, now); err != nil {
			return fail(statusGone, "the lock on message %s is lost: it expired or the message was settled", amqp.UUID(t))
		}
	}
	return response{status: statusOK}
}

// linkByName finds a link of this connection on which the client
// receives, by name ("" finds nothing).
func (c *conn) linkByName(name string) *link {
	if name == "" {
		return nil
	}
	for _, s := range c.sessions {
		for _, l := range s.links {
			if l.name == name && l.role == amqp.RoleSender {
				return l
			}
		}
	}
	return nil
}

// heldSession returns session id of q when this connection holds its lock
// (through the associated link, when the request names one).
func (c *conn) heldSession(q *queue, id, assoc string, now time.Time) (*group, response) {
	if !q.sessions() {
		return nil, fail(statusBadRequest, "queue %q has no sessions", q.cfg.Name)
	}
	g := q.groups[id]
	if g == nil || g.holder == nil || g.holder.s.c != c || (assoc != "" && g.holder.name != assoc) || !now.Before(g.lockedUntil) {
		return nil, fail(statusGone, "the lock on session %q is lost or is held by another receiver", id)
	}
	return g, response{}
}

// peek returns messages from a sequence number on without locking them.
func (c *conn) peek(q *queue, body map[string]any) response {
	from, _ := body["from-sequence-number"].(int64)
	count := 1
	if n, ok := body["message-count"].(int32); ok && n > 0 {
		count = int(n)
	}
	session, hasSession := body["session-id"].(string)
	i := sort.Search(len(q.bySeq), func(i int) bool { return q.bySeq[i].seq >= from })
	var msgs []any
	for ; i < len(q.bySeq) && len(msgs) < count; i++ {
		m := q.bySeq[i]
		if m.gone || (hasSession && m.sessionID != session) {
			continue
		}
		b, err := q.render(m, true).MarshalBinary()
		if err != nil {
			return fail(statusBadRequest, "encode message %d: %s", m.seq, err)
		}
		msgs = append(msgs, map[string]any{"message": b})
	}
	if len(msgs) == 0 {
		return response{status: statusNoContent, desc: "no messages"}
	}
	return response{status: statusOK, body: map[string]any{"messages": msgs}}
}

// receiveDeferred locks (or, in receive-and-delete mode, removes) deferred
// messages by sequence number.
func (c *conn) receiveDeferred(q *queue, body map[string]any, assoc string, now time.Time) response {
	seqs := int64s(body["sequence-numbers"])
	mode, _ := body["receiver-settle-mode"].(uint32)
	if len(seqs) == 0 {
		return fail(statusBadRequest, "receive-by-sequence-number needs sequence-numbers")
	}
	var found []*message
	for _, seq := range seqs {
		i := sort.Search(len(q.bySeq), func(i int) bool { return q.bySeq[i].seq >= seq })
		if i == len(q.bySeq) || q.bySeq[i].seq != seq || q.bySeq[i].gone || q.bySeq[i].state != stDeferred {
			return fail(statusNotFound, "no deferred message with sequence number %d", seq)
		}
		found = append(found, q.bySeq[i])
	}
	var holder *link
	if q.sessions() {
		for _, m := range found {
			g, r := c.heldSession(q, m.sessionID, assoc, now)
			if g == nil {
				return r
			}
			holder = g.holder
		}
	}
	out := make([]any, 0, len(found))
	for _, m := range found {
		entry := map[string]any{}
		var rendered *goamqp.Message
		if mode == 0 {
			m.deliveries++
			rendered = q.render(m, false)
			q.remove(m)
		} else {
			q.lock(m, holder, now)
			rendered = q.render(m, false)
			rendered.DeliveryAnnotations = goamqp.Annotations{"x-opt-lock-token": goamqp.UUID(m.lockToken)}
			entry["lock-token"] = goamqp.UUID(m.lockToken)
		}
		b, err := rendered.MarshalBinary()
		if err != nil {
			return fail(statusBadRequest, "encode message %d: %s", m.seq, err)
		}
		entry["message"] = b
		out = append(out, entry)
	}
	return response{status: statusOK, body: map[string]any{"messages": out}}
}

// listSessions answers get-message-sessions: sessions with messages or
// state, or (with a real last-updated-time) sessions whose state changed
// since.
func (c *conn) listSessions(q *queue, body map[string]any) response {
	if !q.sessions() {
		return fail(statusBadRequest, "queue %q has no sessions", q.cfg.Name)
	}
	since, _ := body["last-updated-time"].(time.Time)
	skip, _ := body["skip"].(int32)
	top, _ := body["top"].(int32)
	skip, top = max(skip, 0), max(top, 0)
	all := since.IsZero() || since.Year() >= 9999
	var ids []string
	for id, g := range q.groups {
		if all && (g.live > 0 || g.state != nil) || !all && g.stateUpdated.After(since) {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	if int(skip) >= len(ids) {
		return response{status: statusNoContent, desc: "no sessions"}
	}
	ids = ids[skip:]
	if top > 0 && int(top) < len(ids) {
		ids = ids[:top]
	}
	return response{status: statusOK, body: map[string]any{"skip": skip + int32(len(ids)), "sessions-ids": ids}}
}

func uuids(v any) []goamqp.UUID {
	switch t := v.(type) {
	case []goamqp.UUID:
		return t
	case goamqp.UUID:
		return []goamqp.UUID{t}
	case []any:
		var out []goamqp.UUID
		for _, x := range t {
			if u, ok := x.(goamqp.UUID); ok {
				out = append(out, u)
			}
		}
		return out
	}
	return nil
}

func int64s(v any) []int64 {
	switch t := v.(type) {
	case []int64:
		return t
	case []any:
		var out []int64
		for _, x := range t {
			if n, ok := x.(int64); ok {
				out = append(out, n)
			}
		}
		return out
	}
	return nil
}

// normalizeAudience lower-cases a resource URI and strips its scheme and
// slashes: "amqp://Host:5672/Q/" becomes "host:5672/q".
func normalizeAudience(s string) string {
	s = strings.ToLower(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	return strings.Trim(s, "/")
}
