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
// written since then. The agent asks it after a crash, when its ledger
// cannot tell whether a result's line was written before the crash.
func (w *Writer) Contains(requestID, event string, since time.Time) (bool, error) {
	f, err := os.Open(w.path)
	if err != nil {
		return false, fmt.Errorf("read audit file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("read audit file: %w", err)
	}
	const block = 64 << 10
	end := st.Size()
	var tail []byte // the start of a line cut by the previous block
	for end > 0 {
		start := max(end-block, 0)
		buf := make([]byte, end-start, int(end-start)+len(tail))
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return false, fmt.Errorf("read audit file: %w", err)
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
				return false, nil
			}
			if l.RequestID == requestID && l.Event == event {
				return true, nil
			}
		}
		end = start
	}
	return false, nil
}
