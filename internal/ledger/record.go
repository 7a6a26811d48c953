package ledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is where a request id stands.
type State uint8

const (
	// Unknown means the id has no record: nothing was attempted.
	Unknown State = iota
	// Applying means a directory write was started at Record.At and its
	// outcome was not recorded: it may or may not have happened.
	Applying
	// Done means the request was answered with Record.Result; a redelivery
	// gets that result again and causes no second write.
	Done
)

// String returns the word used in the session-state text form.
func (s State) String() string {
	switch s {
	case Applying:
		return "applying"
	case Done:
		return "done"
	default:
		return "unknown"
	}
}

// MaxIDLength bounds a request id. Protocol ids are 36-character UUIDs; the
// bound only keeps a hostile or broken record from growing without limit.
const MaxIDLength = 128

// Record is the state of one request id.
type Record struct {
	ID    string
	State State
	// At is when the first write attempt began (Applying) or when the result
	// was recorded (Done). The session-state text form of a done record does
	// not carry it, so a decoded done record has a zero At.
	At time.Time
	// Result is the result body exactly as sent (JSON), for Done.
	Result []byte
	// Audited reports, for Done in the local store, whether the result's
	// audit line is known to be written. A crash between recording the
	// result and writing its audit line leaves it false, so the redelivery
	// writes the missing line instead of only a "replayed" one.
	Audited bool
}

// String returns the protocol's text form: `applying <id> at <RFC3339>` or
// `done <id> <result JSON>`.
func (r Record) String() string {
	switch r.State {
	case Applying:
		return "applying " + r.ID + " at " + r.At.UTC().Format(time.RFC3339Nano)
	case Done:
		return "done " + r.ID + " " + string(r.Result)
	default:
		return "unknown " + r.ID
	}
}

// check reports why r cannot be written in the text form, so a bad record
// is refused when stored instead of producing state nobody can read back.
func (r Record) check() error {
	if err := checkID(r.ID); err != nil {
		return err
	}
	switch r.State {
	case Applying:
		if r.At.IsZero() {
			return fmt.Errorf("applying record for %s has no time", r.ID)
		}
	case Done:
		if !json.Valid(r.Result) {
			return fmt.Errorf("done record for %s: the result is not valid JSON", r.ID)
		}
		if bytes.ContainsAny(r.Result, "\r\n") {
			return fmt.Errorf("done record for %s: the result spans lines; store it compacted (json.Compact)", r.ID)
		}
	default:
		return fmt.Errorf("record for %s has no state (want applying or done)", r.ID)
	}
	return nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return errors.New("request id is empty")
	case len(id) > MaxIDLength:
		return fmt.Errorf("request id is %d bytes long, more than %d", len(id), MaxIDLength)
	case strings.ContainsFunc(id, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("request id contains spaces or control characters")
	}
	return nil
}

// ParseRecord parses one record in the text form. Bad input is an error,
// never a panic.
func ParseRecord(line string) (Record, error) {
	word, rest, _ := strings.Cut(line, " ")
	id, rest, _ := strings.Cut(rest, " ")
	var r Record
	switch word {
	case "applying":
		ts, ok := strings.CutPrefix(rest, "at ")
		if !ok {
			return Record{}, fmt.Errorf("session state record %q: want `applying <id> at <RFC3339>`", clip(line))
		}
		at, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return Record{}, fmt.Errorf("session state record %q: bad time: %w", clip(line), err)
		}
		r = Record{ID: id, State: Applying, At: at}
	case "done":
		r = Record{ID: id, State: Done, Result: []byte(rest)}
	default:
		return Record{}, fmt.Errorf("session state record %q: want `applying ...` or `done ...`", clip(line))
	}
	if err := r.check(); err != nil {
		return Record{}, fmt.Errorf("session state record %q: %w", clip(line), err)
	}
	return r, nil
}

// clip shortens s for an error message, so garbage input cannot make an
// error as large as itself.
func clip(s string) string {
	const limit = 80
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}
