//go:build windows

package audit

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/windows"
)

// openLocked opens the audit file for writing and locks it against a second
// writer: two agents appending to one file would fork the chain. The locked
// byte lies far beyond any real file size, so readers (wbagent audit verify,
// a log shipper) are not blocked by the lock.
func openLocked(path string) (file, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, err
	}
	ol := new(windows.Overlapped)
	ol.OffsetHigh = 0x7fffffff
	err = windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
	if err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return nil, fmt.Errorf("another process is writing it (is a second wbagent using the same audit.file?)")
		}
		return nil, fmt.Errorf("lock: %w", err)
	}
	return f, nil
}

// syncDir is not needed on Windows: NTFS makes a new file's directory
// entry durable with its metadata.
func syncDir(string) error { return nil }
