package audit

import (
	"fmt"
	"sort"
	"strings"

	"wbagent/internal/wire"
)

// Event Log ids. Every outcome has a stable id, so an administrator can
// filter or alert on one number (like the reference product's 31001–33008):
//
//	id = op base + event offset + code offset
//
//	op base         event offset           code offset
//	reset   31000   result           0     ok                     1   password_policy      2
//	change  32000   replayed       100     wrong_old_password     3   account_locked       4
//	unlock  33000   abandoned      200     account_disabled       5   user_not_found       6
//	unknown 34000   dead_lettered  300     user_ambiguous         7   protected_account    8
//	                (other event   900)    out_of_scope           9   access_denied       10
//	                                       expired               11   invalid_request     12
//	                                       directory_unavailable 13   internal_error      14
//	                                       malformed             15   unauthenticated     16
//	                                       (other code           99)
//
// Examples: 31001 a reset applied; 32002 a change refused by the password
// policy; 31106 a redelivered reset answered again with user_not_found;
// 33213 an unlock left for redelivery because no DC answered; 34316 a
// message dead-lettered as unauthenticated (its op cannot be trusted, so it
// counts as unknown). The levels: ok is Information; access_denied,
// internal_error and unauthenticated are Error; every other code is Warning.
// EventIDTable prints the whole table as markdown for the README.
const (
	opBaseReset   = 31000
	opBaseChange  = 32000
	opBaseUnlock  = 33000
	opBaseUnknown = 34000
	otherEvent    = 900
	otherCode     = 99
)

var opBases = map[string]uint32{
	string(wire.OpReset): opBaseReset, string(wire.OpChange): opBaseChange, string(wire.OpUnlock): opBaseUnlock,
}

var eventOffsets = map[string]uint32{EventResult: 0, EventReplayed: 100, EventAbandoned: 200, EventDeadLettered: 300}

// codes lists the result codes (protocol v1 §6) and then the dead-letter
// reasons of §8 that are not codes, in offset order: codes[i] has offset
// i+1. wire.Codes only grows at its end, so an id never changes meaning.
var codes = append(append([]string(nil), wire.Codes...), wire.ReasonMalformed, wire.ReasonUnauthenticated)

// Level is an Event Log entry type.
type Level uint8

// Event Log entry types.
const (
	Information Level = iota
	Warning
	Error
)

// String returns the Event Viewer's name of the level.
func (l Level) String() string {
	return [...]string{"Information", "Warning", "Error"}[l]
}

// EventID returns the stable Event Log id of an outcome: its op, its event
// and its code (see the table above). Unknown values map to the "unknown" or
// "other" slots, never to another outcome's id.
func EventID(op, event, code string) uint32 {
	base, ok := opBases[op]
	if !ok {
		base = opBaseUnknown
	}
	ev, ok := eventOffsets[event]
	if !ok {
		ev = otherEvent
	}
	return base + ev + codeOffset(code)
}

func codeOffset(code string) uint32 {
	for i, c := range codes {
		if c == code {
			return uint32(i + 1)
		}
	}
	return otherCode
}

// EventLevel returns the Event Log entry type of an outcome with code.
func EventLevel(code string) Level {
	switch code {
	case wire.CodeOK:
		return Information
	case wire.CodeAccessDenied, wire.CodeInternalError, wire.ReasonUnauthenticated:
		return Error
	}
	if codeOffset(code) == otherCode {
		return Error
	}
	return Warning
}

// EventIDTable returns the id scheme as markdown, for the README.
func EventIDTable() string {
	var b strings.Builder
	b.WriteString("Event id = op base + event offset + code offset (Event Log source `wbagent`, log Application).\n\n")
	b.WriteString("| op | base |\n|---|---|\n")
	for _, op := range wire.Ops {
		fmt.Fprintf(&b, "| `%s` | %d |\n", op, opBases[string(op)])
	}
	fmt.Fprintf(&b, "| unknown (not authenticated, unreadable) | %d |\n\n", opBaseUnknown)

	b.WriteString("| event | offset | meaning |\n|---|---|---|\n")
	events := make([]string, 0, len(eventOffsets))
	for e := range eventOffsets {
		events = append(events, e)
	}
	sort.Slice(events, func(i, j int) bool { return eventOffsets[events[i]] < eventOffsets[events[j]] })
	meaning := map[string]string{
		EventResult:       "answered with a result",
		EventReplayed:     "a redelivery answered again with the first result, no second write",
		EventAbandoned:    "left on the queue for redelivery",
		EventDeadLettered: "dead-lettered; the code is the dead-letter reason",
	}
	for _, e := range events {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", e, eventOffsets[e], meaning[e])
	}
	fmt.Fprintf(&b, "| other | %d | an event this table does not know |\n\n", otherEvent)

	b.WriteString("| code | offset | level |\n|---|---|---|\n")
	for _, c := range codes {
		fmt.Fprintf(&b, "| `%s` | %d | %s |\n", c, codeOffset(c), EventLevel(c))
	}
	fmt.Fprintf(&b, "| other | %d | %s |\n\n", otherCode, EventLevel(""))

	b.WriteString("Examples: ")
	ex := []struct{ op, event, code, what string }{
		{string(wire.OpReset), EventResult, wire.CodeOK, "a reset applied"},
		{string(wire.OpChange), EventResult, wire.CodePasswordPolicy, "a change refused by the password policy"},
		{string(wire.OpReset), EventReplayed, wire.CodeUserNotFound, "a redelivered reset answered again"},
		{string(wire.OpUnlock), EventAbandoned, wire.CodeDirectoryUnavailable, "an unlock left for redelivery, no DC answered"},
		{"", EventDeadLettered, wire.ReasonUnauthenticated, "a message with a bad signature"},
	}
	for i, e := range ex {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d %s", EventID(e.op, e.event, e.code), e.what)
	}
	b.WriteString(".\n")
	return b.String()
}

// EventMessage returns the text of an Event Log entry for rec: a readable
// summary, then the audit line's hash so the entry can be matched to the
// file.
func EventMessage(rec Record) string {
	var b strings.Builder
	op := rec.Op
	if op == "" {
		op = "request"
	}
	fmt.Fprintf(&b, "wbagent: %s %s (%s)\r\n", op, rec.Code, rec.Event)
	line := func(name, value string) {
		if value != "" {
			fmt.Fprintf(&b, "%s: %s\r\n", name, value)
		}
	}
	line("Request", rec.RequestID)
	if len(rec.Target) > 0 {
		keys := make([]string, 0, len(rec.Target))
		for k := range rec.Target {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + rec.Target[k]
		}
		line("Target", strings.Join(parts, ", "))
	}
	line("Object", rec.DN)
	line("ObjectGUID", rec.ObjectGUID)
	if a := rec.Actor; a != nil {
		who := a.ID + " (" + a.Kind
		if a.IP != "" {
			who += ", " + a.IP
		}
		line("Actor", who+")")
	}
	line("Sender key", rec.SenderKID)
	line("Detail", rec.Detail)
	line("Domain controller", rec.DC)
	fmt.Fprintf(&b, "Attempts: %d, duration %d ms\r\n", rec.Attempts, rec.DurationMs)
	line("Agent", rec.Agent)
	line("Time", rec.Time.UTC().Format("2006-01-02T15:04:05.000Z"))
	line("Audit line hash", rec.Hash)
	return b.String()
}
