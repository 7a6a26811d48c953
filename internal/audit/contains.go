package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// Contains reports whether the trail holds a line of event for requestID
// written at or after since. It reads the file backwards from its end and
// stops at the first line older than since, so it costs only the lines
// written since then; when every line of the file is that recent, it goes
// on into the rotated files, newest first. The agent asks it after a
// crash, when its ledger cannot tell whether a result's line was written
// before the crash.
func (w *Writer) Contains(requestID, event string, since time.Time) (bool, error) {
	found, older, err := containsIn(w.path, requestID, event, since)
	if err != nil || found || older {
		return found, err
	}
	rotated, err := RotatedFiles(w.path)
	if err != nil {
		return false, err
	}
	for i := len(rotated) - 1; i >= 0; i-- {
		found, older, err := containsIn(rotated[i], requestID, event, since)
		if err != nil || found || older {
			return found, err
		}
	}
	return false, nil
}

// containsIn is Contains for one file; older reports that a line older
// than since was reached, so earlier files need not be read.
func containsIn(path, requestID, event string, since time.Time) (found, older bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, fmt.Errorf("read audit file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, false, fmt.Errorf("read audit file: %w", err)
	}
	const block = 64 << 10
	end := st.Size()
	var tail []byte // the start of a line cut by the previous block
	for end > 0 {
		start := max(end-block, 0)
		buf := make([]byte, end-start, int(end-start)+len(tail))
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return false, false, fmt.Errorf("read audit file: %w", err)
		}
		buf = append(buf, tail...)
		lines := bytes.Split(buf, []byte{'\n'})
		// The first piece may be cut unless the block starts the file.
		first := 0
		if start > 0 {
			tail, first = lines[0], 1
		}
		for i := len(lines) - 1; i >= first; i-- {
			var l struct {
				Time      time.Time `json:"time"`
				Event     string    `json:"event"`
				RequestID string    `json:"requestId"`
			}
			if len(lines[i]) == 0 || json.Unmarshal(lines[i], &l) != nil {
				continue // an empty or torn line
			}
			if l.Time.Before(since) {
				return false, true, nil
			}
			if l.RequestID == requestID && l.Event == event {
				return true, false, nil
			}
		}
		end = start
	}
	return false, false, nil
}
