package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// probeBytes is what Probe writes: more than a typical group commit, so a
// disk that passes the probe takes the next transaction too.
const probeBytes = 64 << 10

// Probe reports whether the state directory takes writes now: it writes,
// fsyncs and removes a probe file next to the ledger. The agent asks it
// after a ledger write failed (a full disk), to learn when it may take
// messages again without risking a request on it.
func (s *Store) Probe() error {
	s.probeMu.Lock()
	defer s.probeMu.Unlock()
	path := filepath.Join(filepath.Dir(s.db.Path()), FileName+".probe")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("probe write to the state directory: %w", err)
	}
	_, err = f.Write(make([]byte, probeBytes))
	if err == nil {
		err = f.Sync()
	}
	terr := f.Truncate(0) // give the space back even when the write failed
	cerr := f.Close()
	rerr := os.Remove(path)
	if err := errors.Join(err, terr, cerr, rerr); err != nil {
		return fmt.Errorf("probe write to the state directory: %w", err)
	}
	return nil
}
