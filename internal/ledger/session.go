package ledger

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// SessionStateHeader opens a session state in the version-1 encoding, which
// carries no MAC. Agents write and trust only the sealed version 2
// (SessionSeal); Encode and DecodeSessionState remain the codec of the
// record lines, and of version 1 for reading what older agents wrote.
const SessionStateHeader = "wbagent-session-state 1"

// Bounds of an encoded session state. Service Bus caps session state at the
// queue's message size (256 KiB on the standard tier); one session is one
// target whose requests run one at a time, so a handful of recent ids is all
// a redelivery can refer to.
const (
	MaxSessionRecords    = 16
	MaxSessionStateBytes = 16 << 10
	// maxDecodeBytes is what DecodeSessionState reads at most: more than any
	// agent writes, so a larger state is someone else's data.
	maxDecodeBytes = 256 << 10
)

// ErrSessionStateVersion means the state was written by an agent with a
// newer encoding. Callers should not overwrite it (that would lose the other
// agent's records) but leave the message for redelivery and alert.
var ErrSessionStateVersion = errors.New("session state has an unknown encoding version (a newer wbagent wrote it); upgrade this agent")

// SessionState is the decoded session state: the records of the session's
// most recent request ids, oldest first. The zero value is an empty state.
type SessionState struct {
	Records []Record
}

// Find returns the record of id.
func (s *SessionState) Find(id string) (Record, bool) {
	for i := len(s.Records) - 1; i >= 0; i-- {
		if s.Records[i].ID == id {
			return s.Records[i], true
		}
	}
	return Record{}, false
}

// Put stores r as the newest record, replacing any earlier record of the
// same id, and drops the oldest records beyond MaxSessionRecords.
func (s *SessionState) Put(r Record) {
	kept := s.Records[:0]
	for _, old := range s.Records {
		if old.ID != r.ID {
			kept = append(kept, old)
		}
	}
	kept = append(kept, r)
	if n := len(kept) - MaxSessionRecords; n > 0 {
		kept = append(kept[:0], kept[n:]...)
	}
	s.Records = kept
}

// Remove drops the record of id, for an `applying` that is known not to
// have written anything after all.
func (s *SessionState) Remove(id string) {
	kept := s.Records[:0]
	for _, old := range s.Records {
		if old.ID != id {
			kept = append(kept, old)
		}
	}
	s.Records = kept
}

// Encode returns the state in its text form: the header line, then one
// record per line, oldest first. When the records do not fit in
// MaxSessionStateBytes the oldest are dropped (from s too); the newest record
// is never dropped, and if it alone does not fit Encode fails.
func (s *SessionState) Encode() ([]byte, error) {
	return s.encode(SessionStateHeader, Record.String)
}

// encode writes header and then line(r) for each record, dropping the
// oldest records until the whole fits MaxSessionStateBytes, so the plain
// and the sealed form keep the same retention rule.
func (s *SessionState) encode(header string, line func(Record) string) ([]byte, error) {
	lines := make([]string, len(s.Records))
	size := len(header) + 1
	for i, r := range s.Records {
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("encode session state: %w", err)
		}
		lines[i] = line(r)
		size += len(lines[i]) + 1
	}
	first := 0
	for size > MaxSessionStateBytes && first < len(lines)-1 {
		size -= len(lines[first]) + 1
		first++
	}
	if size > MaxSessionStateBytes {
		return nil, fmt.Errorf("encode session state: the record of %s is %d bytes, more than the %d a session state may hold", s.Records[len(s.Records)-1].ID, size, MaxSessionStateBytes)
	}
	s.Records = append(s.Records[:0], s.Records[first:]...)
	var b bytes.Buffer
	b.Grow(size)
	b.WriteString(header)
	b.WriteByte('\n')
	for _, l := range lines[first:] {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// DecodeSessionState parses a version-1 state. Empty input is an empty
// state (a session nobody wrote yet). Input without the header is read as
// bare records, one per line, as protocol v1 §7 writes them. Nothing here is
// authenticated: the agent reads state only through SessionSeal.Decode,
// which treats this form as absent. Any malformed input is an error, never
// a panic; a record repeated later in the input replaces the earlier one.
func DecodeSessionState(b []byte) (*SessionState, error) {
	s := &SessionState{}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	if len(b) > maxDecodeBytes {
		return nil, fmt.Errorf("decode session state: %d bytes, more than %d; it was not written by wbagent", len(b), maxDecodeBytes)
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	skipped := 0
	if head, ok := strings.CutPrefix(lines[0], "wbagent-session-state "); ok {
		if head != "1" {
			return nil, fmt.Errorf("decode session state: version %q: %w", clip(head), ErrSessionStateVersion)
		}
		lines, skipped = lines[1:], 1
	}
	for i, l := range lines {
		r, err := ParseRecord(l)
		if err != nil {
			return nil, fmt.Errorf("decode session state: line %d: %w", i+1+skipped, err)
		}
		s.Put(r)
	}
	return s, nil
}
