package audit

import (
	"time"
	"unicode/utf8"
)

// Events: what happened to a request, in Record.Event.
const (
	// EventResult: the request was answered with a result (Code says which).
	EventResult = "result"
	// EventReplayed: a redelivery was answered with the first result from
	// the ledger or the session state, without a second directory write.
	EventReplayed = "replayed"
	// EventAbandoned: the message was left for redelivery
	// (directory_unavailable, internal_error).
	EventAbandoned = "abandoned"
	// EventDeadLettered: the message was dead-lettered; Code is the
	// dead-letter reason (malformed, unauthenticated, invalid_request).
	EventDeadLettered = "dead_lettered"
)

// Record is one audit line. Fields are written in this order; empty optional
// fields are left out. It never holds a password: there is no field for one.
type Record struct {
	// Time of the outcome, kept to the millisecond in UTC; the writer's clock
	// fills it when zero.
	Time  time.Time `json:"time"`
	Event string    `json:"event"`
	// RequestID is the request id (or the message id when the body could
	// not be read).
	RequestID string `json:"requestId"`
	// Op is reset, change or unlock; empty when unknown (unauthenticated).
	Op string `json:"op"`
	// Target is the request's target exactly as given (member -> value).
	Target map[string]string `json:"target,omitempty"`
	// DN and ObjectGUID are the resolved object, when resolution happened.
	DN         string `json:"dn,omitempty"`
	ObjectGUID string `json:"objectGUID,omitempty"`
	// Actor is who asked, in the cloud, as the request says.
	Actor *Actor `json:"actor,omitempty"`
	// SenderKID is the kid of the key that signed the request.
	SenderKID string `json:"senderKid,omitempty"`
	// Code is the protocol result code, or the dead-letter reason.
	Code   string `json:"code"`
	Detail string `json:"detail,omitempty"`
	// Count, on an aggregated line (see Aggregator), is how many messages
	// the line stands for; absent on a line for one message.
	Count int `json:"count,omitempty"`
	// DC is the domain controller that took the write.
	DC         string `json:"dc,omitempty"`
	Attempts   int    `json:"attempts"`
	DurationMs int64  `json:"durationMs"`
	// Agent is the agent's name (agent.name).
	Agent string `json:"agent"`
	// Prev and Hash chain the lines; the writer sets both, and Sinks see
	// them, so an Event Log entry can be matched to its file line.
	Prev string `json:"prev"`
	Hash string `json:"hash,omitempty"`
}

// Actor is the cloud identity that asked for the change.
type Actor struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	IP   string `json:"ip,omitempty"`
}

// maxField bounds every text field of a line. Fields copied from a request
// that failed validation can be as large as the request; the audit keeps
// their start.
const maxField = 1024

// clamped returns r with every text field cut to maxField bytes.
func (r Record) clamped() Record {
	c := r
	for _, p := range []*string{&c.Event, &c.RequestID, &c.Op, &c.DN, &c.ObjectGUID, &c.SenderKID, &c.Code, &c.Detail, &c.DC, &c.Agent} {
		*p = clampString(*p)
	}
	if r.Target != nil {
		c.Target = make(map[string]string, len(r.Target))
		for k, v := range r.Target {
			c.Target[clampString(k)] = clampString(v)
		}
	}
	if r.Actor != nil {
		c.Actor = &Actor{ID: clampString(r.Actor.ID), Kind: clampString(r.Actor.Kind), IP: clampString(r.Actor.IP)}
	}
	return c
}

func clampString(s string) string {
	if len(s) <= maxField {
		return s
	}
	cut := maxField
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
