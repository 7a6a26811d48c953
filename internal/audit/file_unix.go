//go:build !windows

package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// openLocked opens the audit file for writing and takes an exclusive,
// advisory lock on it: two agents appending to one file would fork the chain.
func openLocked(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("another process is writing it (is a second wbagent using the same audit.file?)")
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}

// syncDir makes a newly created file's directory entry durable.
func syncDir(path string) error {
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
